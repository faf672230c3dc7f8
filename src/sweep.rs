//! `fairground sweep plan|run|local|status`: the command-line side of
//! `fairground_trainer::sweep` (the plan and the run states live there). `local` is a pool of
//! `sweep run` processes: each run is its own process, so one that fails or is killed never
//! takes the others with it, and a rerun continues from the files alone.

use crate::cli::SweepCommand;
use fairground_trainer::sweep::{self, RunOutcome, RunState};
use std::io::IsTerminal;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn run(cmd: SweepCommand) -> anyhow::Result<()> {
    match cmd {
        SweepCommand::Plan { file, out } => {
            let s = sweep::plan(&file, &out)?;
            let grids: Vec<String> = s
                .grids
                .iter()
                .map(|g| {
                    let axes: Vec<String> = g
                        .axes
                        .iter()
                        .map(|a| format!("{} ({})", a.name, a.values.len()))
                        .collect();
                    format!("{}: {}", g.name, axes.join(" × "))
                })
                .collect();
            eprintln!("planned {} runs; {}", s.runs.len(), grids.join("; "));
            println!("{}", out.display());
        }
        SweepCommand::Run { dir, index, pack } => {
            let index = index.or_else(sweep::index_from_env).ok_or_else(|| {
                anyhow::anyhow!(
                    "--index: not given, and neither SLURM_ARRAY_TASK_ID nor \
                     JOB_COMPLETION_INDEX is set"
                )
            })?;
            let stop = crate::train::stop_on_signal(Some(dir.clone()));
            if let Some(k) = pack {
                for (i, o) in sweep::run_pack(&dir, k as usize, index, false, stop)? {
                    report_outcome(i, o);
                }
                return Ok(());
            }
            report_outcome(index, sweep::run_index(&dir, index, false, stop)?);
        }
        SweepCommand::Local { dir, jobs, pack } => local(&dir, jobs as usize, pack)?,
        SweepCommand::Slurm {
            dir,
            partition,
            time,
            cpus_per_task,
            gpus_per_task,
            max_parallel,
            submit,
            pack,
        } => {
            let (dir, n, k) = array_of(&dir, max_parallel, pack)?;
            let mut s = String::from("#!/bin/bash\n");
            s += "# Written by `fairground sweep slurm`: one array task per planned run (with --pack,\n";
            s += "# per pack group); each calls `fairground sweep run`, which skips a finished run\n";
            s += "# and resumes a partial one.\n";
            s += &format!("#SBATCH --job-name=fairground-{}\n", name_of(&dir));
            s += &format!("#SBATCH --array=0-{}%{k}\n", n - 1);
            s += &format!("#SBATCH --cpus-per-task={cpus_per_task}\n");
            s += &format!("#SBATCH --output={}/runs/slurm-%A_%a.out\n", dir.display());
            if let Some(p) = &partition {
                s += &format!("#SBATCH --partition={p}\n");
            }
            if let Some(t) = &time {
                s += &format!("#SBATCH --time={t}\n");
            }
            if gpus_per_task > 0 {
                s += &format!("#SBATCH --gpus-per-task={gpus_per_task}\n");
            }
            s += "set -euo pipefail\n";
            s += &format!(
                "exec {} sweep run {}{}\n",
                shell_quote(&std::env::current_exe()?.display().to_string()),
                shell_quote(&dir.display().to_string()),
                pack.map_or(String::new(), |k| format!(" --pack {k}"))
            );
            let path = dir.join("slurm.sbatch");
            fairground_trainer::io::write_atomic(&path, s.as_bytes())?;
            print!("{s}");
            if submit {
                let out = Command::new("sbatch")
                    .arg("--parsable")
                    .arg(&path)
                    .output()
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "--submit: cannot run sbatch ({e}); install Slurm or submit {} \
                             yourself",
                            path.display()
                        )
                    })?;
                if !out.status.success() {
                    anyhow::bail!(
                        "sbatch refused {}: {}",
                        path.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
                eprintln!("submitted job {id} ({n} array tasks, {k} at once)");
            }
        }
        SweepCommand::K8s {
            dir,
            image,
            pvc,
            max_parallel,
            pack,
        } => {
            let (dir, n, k) = array_of(&dir, max_parallel, pack)?;
            let d = dir.display().to_string();
            let mut y = String::from(
                "# Written by `fairground sweep k8s`: an Indexed Job, one completion per planned run\n\
                 # (with --pack, per pack group);\n\
                 # each calls `fairground sweep run`, which reads its index from JOB_COMPLETION_INDEX.\n",
            );
            y += "apiVersion: batch/v1\nkind: Job\nmetadata:\n";
            y += &format!("  name: fairground-{}\n", name_of(&dir));
            y += "spec:\n  completionMode: Indexed\n";
            y += &format!("  completions: {n}\n  parallelism: {k}\n  backoffLimitPerIndex: 2\n");
            y += "  template:\n    spec:\n      restartPolicy: Never\n      containers:\n";
            y += &format!("        - name: run\n          image: {image}\n");
            let pack_args = pack.map_or(String::new(), |k| format!(", \"--pack\", \"{k}\""));
            y += &format!(
                "          command: [\"fairground\", \"sweep\", \"run\", {d:?}{pack_args}]\n"
            );
            if let Some(claim) = &pvc {
                y += &format!(
                    "          volumeMounts:\n            - name: sweep\n              mountPath: {d:?}\n"
                );
                y += &format!(
                    "      volumes:\n        - name: sweep\n          persistentVolumeClaim:\n            claimName: {claim}\n"
                );
            }
            let path = dir.join("k8s-job.yaml");
            fairground_trainer::io::write_atomic(&path, y.as_bytes())?;
            print!("{y}");
        }
        SweepCommand::Status { dir, json } => {
            let s = sweep::status_json(&dir)?;
            if json {
                println!("{s}");
            } else {
                for r in s["by_run"].as_array().expect("runs") {
                    let values: Vec<String> = r["values"]
                        .as_object()
                        .expect("values")
                        .iter()
                        .map(|(k, v)| match v.as_str() {
                            Some(s) => format!("{k}={s}"),
                            None => format!("{k}={v}"),
                        })
                        .collect();
                    println!(
                        "{:04} {:<8} {}",
                        r["index"].as_u64().unwrap_or(0),
                        r["state"].as_str().unwrap_or("?"),
                        values.join(" ")
                    );
                    if let Some(e) = r["error"].as_str() {
                        println!("     error: {e}");
                    }
                }
                println!("{}", s["counts"]);
            }
        }
    }
    Ok(())
}

fn report_outcome(index: usize, o: RunOutcome) {
    match o {
        RunOutcome::Skipped => eprintln!("run {index}: already done"),
        RunOutcome::Trained { resumed_from } => match resumed_from {
            Some(k) => eprintln!("run {index}: done (resumed from iteration {k})"),
            None => eprintln!("run {index}: done"),
        },
    }
}

/// `sweep local DIR --jobs K [--pack P]`: every run not done, K processes at a time (with
/// `--pack`, a process per pack group), one progress line.
fn local(dir: &Path, jobs: usize, pack: Option<u32>) -> anyhow::Result<()> {
    let plan = sweep::load(dir)?;
    let total = plan.runs.len();
    // The units a process trains: one run each, or one pack group each.
    let units: Vec<Vec<usize>> = match pack {
        Some(k) => sweep::pack_groups(dir, &plan, k as usize)?,
        None => (0..total).map(|i| vec![i]).collect(),
    };
    let is_done = |i: usize| matches!(sweep::state(dir, &plan.runs[i]), RunState::Done { .. });
    let mut done = (0..total).filter(|&i| is_done(i)).count();
    let todo: Vec<usize> = (0..units.len())
        .filter(|&u| units[u].iter().any(|&i| !is_done(i)))
        .collect();
    if let Some(k) = pack {
        eprintln!(
            "sweep: {} pack groups of up to {k} runs ({} to train)",
            units.len(),
            todo.len()
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        // The children share the terminal's process group and get the same signal: each
        // stops after its iteration with a checkpoint. The pool stops launching.
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let exe = std::env::current_exe()?;
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut queue = todo.into_iter();
    // Each process with the runs it was launched to train (its unit's runs not done then).
    let mut running: Vec<(Vec<usize>, Child)> = Vec::new();
    let mut failed = Vec::new();
    let done_at_start = done;
    let mut last_line = String::new();
    loop {
        while running.len() < jobs && !stop.load(Ordering::SeqCst) {
            let Some(u) = queue.next() else { break };
            let log_path = dir
                .join(&plan.runs[units[u][0]].config)
                .with_file_name("log.txt");
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)?;
            let mut cmd = Command::new(&exe);
            cmd.args(["sweep", "run"]).arg(dir);
            match pack {
                Some(k) => cmd.args(["--pack", &k.to_string(), "--index", &u.to_string()]),
                None => cmd.args(["--index", &units[u][0].to_string()]),
            };
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            let runs = units[u].iter().copied().filter(|&i| !is_done(i)).collect();
            running.push((runs, child));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut k = 0;
        while k < running.len() {
            if let Some(status) = running[k].1.try_wait()? {
                let (runs, _) = running.swap_remove(k);
                let (now_done, not_done): (Vec<usize>, Vec<usize>) =
                    runs.into_iter().partition(|&i| is_done(i));
                done += now_done.len();
                if !status.success() && !stop.load(Ordering::SeqCst) {
                    failed.extend(not_done);
                }
            } else {
                k += 1;
            }
        }
        let in_flight: usize = running.iter().map(|(runs, _)| runs.len()).sum();
        let pending = total - done - failed.len() - in_flight;
        let finished_here = done - done_at_start;
        let eta = (finished_here > 0).then(|| {
            let per = start.elapsed().as_secs_f64() / finished_here as f64;
            per * (pending + in_flight) as f64 / jobs as f64
        });
        let line = format!(
            "sweep: {done}/{total} done, {in_flight} running, {} failed, {pending} pending{}",
            failed.len(),
            eta.map_or(String::new(), |s| format!(", ETA {s:.0} s"))
        );
        if tty {
            eprint!("\r{line}   ");
        } else if line != last_line {
            eprintln!("{line}");
        }
        last_line = line;
    }
    if tty {
        eprintln!();
    }
    let wall = start.elapsed().as_secs_f64();
    if stop.load(Ordering::SeqCst) {
        eprintln!("stopped after {wall:.1} s; run `fairground sweep local` again to continue");
        std::process::exit(130);
    }
    if !failed.is_empty() {
        failed.sort_unstable();
        anyhow::bail!(
            "{} of {total} runs failed ({:?}); `fairground sweep status {}` shows why, and a \
             rerun retries only them and the unfinished ones",
            failed.len(),
            failed,
            dir.display()
        );
    }
    eprintln!("sweep: all {total} runs done in {wall:.1} s");
    Ok(())
}

/// An array job's view of a sweep: its absolute directory (tasks may start elsewhere), its
/// tasks (runs, or pack groups with `--pack`) and how many run at once (`max_parallel`, at most all of them).
fn array_of(
    dir: &Path,
    max_parallel: Option<u32>,
    pack: Option<u32>,
) -> anyhow::Result<(std::path::PathBuf, usize, u32)> {
    let plan = sweep::load(dir)?;
    let n = match pack {
        Some(k) => sweep::pack_groups(dir, &plan, k as usize)?.len(),
        None => plan.runs.len(),
    };
    let k = max_parallel.map_or(n as u32, |k| k.min(n as u32));
    Ok((std::fs::canonicalize(dir)?, n, k))
}

/// A job name from the sweep directory's name: lower-case letters, digits and dashes.
fn name_of(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map_or("sweep".into(), |n| n.to_string_lossy().to_lowercase());
    let s: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').chars().take(40).collect()
}

/// `s` as one shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
