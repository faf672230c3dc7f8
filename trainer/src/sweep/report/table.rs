//! A report table, written as Markdown (`report.md`) and as HTML (`report.html`) from the same
//! cells, so the two files never disagree.

use crate::common::html_escape;

pub struct Table {
    pub title: String,
    /// Shown under the title: how the numbers were made.
    pub note: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn markdown(&self, level: usize) -> String {
        let mut md = format!("\n{} {}\n\n", "#".repeat(level), self.title);
        if !self.note.is_empty() {
            md += &format!("{}\n\n", self.note);
        }
        // A `|` inside a cell (|DP|) would end it: escape it.
        let row = |cells: &[String]| {
            let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            format!("| {} |\n", cells.join(" | "))
        };
        md += &row(&self.header);
        md += &format!("|{}\n", "---|".repeat(self.header.len()));
        for r in &self.rows {
            md += &row(r);
        }
        md
    }

    pub fn html(&self, level: usize) -> String {
        let mut h = format!("<h{level}>{}</h{level}>\n", html_escape(&self.title));
        if !self.note.is_empty() {
            h += &format!(
                "<p class=\"note\">{}</p>\n",
                inline_code(&html_escape(&self.note))
            );
        }
        h += "<table>\n<thead><tr>";
        for c in &self.header {
            h += &format!("<th>{}</th>", html_escape(c));
        }
        h += "</tr></thead>\n<tbody>\n";
        for r in &self.rows {
            h += "<tr>";
            for c in r {
                h += &format!("<td>{}</td>", html_escape(c));
            }
            h += "</tr>\n";
        }
        h + "</tbody>\n</table>\n"
    }
}

/// Markdown's `code` spans as HTML `<code>` (notes are the only prose with markup).
pub fn inline_code(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out += &format!("<code>{part}</code>");
        } else {
            out += part;
        }
    }
    out
}

pub fn escape(s: &str) -> String {
    html_escape(s)
}
