//! The steps of a machine's workflow, the states a machine goes through and
//! how a run ends. Each is written as the lowercase word the plan, the state
//! database and the API use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A word that names none of an enum's values.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a {}", self.name, self.what)
    }
}

impl std::error::Error for UnknownName {}

macro_rules! words {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: UnknownName| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(text: &str) -> Result<$name, UnknownName> {
                match text {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownName { what: $what, name: text.to_string() }),
                }
            }
        }
    };
}

words! {
    /// A step of a machine's workflow.
    StepName, "workflow step" {
        /// Hardware checks before the install (`commission: true`).
        Commission = "commission",
        /// The OS install.
        Install = "install",
    }
}

words! {
    /// Where a machine is in its current generation.
    MachineState, "machine state" {
        /// In the plan; has not booted this generation.
        New = "new",
        /// Its commissioning script was served.
        Commissioning = "commissioning",
        /// Its hardware check passed.
        Commissioned = "commissioned",
        /// Its install boot script was served.
        Booting = "booting",
        /// It fetched its install file.
        Installing = "installing",
        /// It reported its install done.
        Installed = "installed",
        /// A run failed or timed out.
        Failed = "failed",
    }
}

words! {
    /// Where a run is: going on, or how it ended.
    RunOutcome, "run state" {
        Active = "active",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_back() {
        for s in MachineState::ALL {
            assert_eq!(s.as_str().parse::<MachineState>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in StepName::ALL {
            assert_eq!(s.as_str().parse::<StepName>(), Ok(*s));
        }
        assert!("booted".parse::<MachineState>().is_err());
    }
}
