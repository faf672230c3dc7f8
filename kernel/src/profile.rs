//! The two rule profiles. A profile is only a name for a set of behaviour flags; each
//! environment has its own flag struct (e.g. `ah::AhFlags`) built from a profile and then
//! individually overridable. Profiles are never silently mixed: the flags in force are part of
//! every snapshot and every bench line.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The paper's rules, with the reference code's bugs fixed (the default).
    #[default]
    Clean,
    /// The Python reference's behaviour, quirks included.
    Reference,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Clean, Profile::Reference];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Clean => "clean",
            Profile::Reference => "reference",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "clean" => Ok(Profile::Clean),
            "reference" => Ok(Profile::Reference),
            _ => Err(format!("unknown profile '{s}' (allowed: clean, reference)")),
        }
    }
}
