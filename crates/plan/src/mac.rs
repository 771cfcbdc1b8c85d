//! MAC addresses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A MAC address. Read from any common spelling (`52:54:00:AB:CD:EF`,
/// `52-54-00-ab-cd-ef`, `5254.00ab.cdef`, `525400abcdef`); always written
/// in lowercase colon form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

impl Mac {
    pub fn parse(text: &str) -> Option<Mac> {
        let hex: Vec<u8> = text.bytes().filter(|c| !matches!(c, b':' | b'-' | b'.')).collect();
        if hex.len() != 12 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut bytes = [0u8; 6];
        for (i, pair) in hex.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).ok()?;
            bytes[i] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Mac(bytes))
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A text that is not a MAC address.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAMac(pub String);

impl fmt::Display for NotAMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a MAC address", self.0)
    }
}

impl std::error::Error for NotAMac {}

impl FromStr for Mac {
    type Err = NotAMac;

    fn from_str(text: &str) -> Result<Mac, NotAMac> {
        Mac::parse(text).ok_or_else(|| NotAMac(text.to_string()))
    }
}

#[cfg(feature = "sql")]
impl rusqlite::types::ToSql for Mac {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.to_string().into())
    }
}

#[cfg(feature = "sql")]
impl rusqlite::types::FromSql for Mac {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: NotAMac| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Mac;

    #[test]
    fn every_common_spelling_is_one_mac() {
        for s in [
            "52:54:00:AB:CD:EF",
            "52-54-00-ab-cd-ef",
            "5254.00ab.cdef",
            "525400abcdef",
        ] {
            assert_eq!(Mac::parse(s).unwrap().to_string(), "52:54:00:ab:cd:ef", "{s}");
        }
        for s in [
            "52:54:00:zz:00:00",
            "52:54:00",
            "",
            "+5:54:00:ab:cd:ef",
            "52:54:00:ab:cd:ef:01",
        ] {
            assert_eq!(Mac::parse(s), None, "{s}");
        }
    }
}
