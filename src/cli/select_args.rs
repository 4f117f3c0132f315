//! The narrowing flags every many-run command takes, parsed into one
//! `Selection` (`esx::store::select`).

use std::path::PathBuf;

use esx::store::filter::Expr;
use esx::store::select::Selection;
use esx::store::tags::check_tag;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct SelectArgs {
    /// Only the runs of this sweep (id or prefix)
    #[arg(long, value_name = "ID")]
    pub sweep: Option<String>,
    /// Only runs matching EXPR, e.g. 'params.lr<1e-3 and status=completed'
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Only runs tagged TAG (repeat: every one of them)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
}

impl SelectArgs {
    /// The selection of these flags over `roots`, narrowed to `runs` (ids,
    /// prefixes or run directories) when any are given.
    pub fn selection(&self, roots: Vec<PathBuf>, runs: Vec<String>) -> anyhow::Result<Selection> {
        for tag in &self.tags {
            check_tag(tag)?;
        }
        Ok(Selection {
            roots,
            runs,
            sweep: self.sweep.clone(),
            filter: self.filter.as_deref().map(Expr::parse).transpose()?,
            tags: self.tags.clone(),
        })
    }
}
