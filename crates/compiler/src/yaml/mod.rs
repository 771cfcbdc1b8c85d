//! YAML in and out: the one reader (with source positions) and the one
//! writer kiln uses.

mod emit;
mod parse;

pub use emit::to_yaml;
pub use parse::{parse_documents, parse_values, Document, Pos};
