//! What a sweep's plots judge its runs by.

use crate::report::collect::{Ranking, ReportRun};

/// What a sweep's runs are judged by: the objective of its search when it
/// has one (TPE, or pruning), else the report's ranking.
pub(super) struct Judge {
    pub title: String,
    pub higher_is_better: bool,
    pub search: Option<String>,
    objective: Option<crate::sweep::Search>,
    ranking: Ranking,
}

impl Judge {
    pub fn of(members: &[usize], runs: &[ReportRun]) -> Judge {
        let ranking = Ranking::for_runs(members.iter().map(|&i| &runs[i]));
        let search = members
            .first()
            .and_then(|&i| runs[i].info.dir.parent())
            .and_then(|dir| crate::sweep::SweepRecord::search(dir).ok().flatten())
            .filter(|s| !s.is_plain_grid());
        match search {
            Some(s) => Judge {
                title: format!("best {}", s.objective),
                higher_is_better: s.direction == crate::sweep::search::Direction::Max,
                search: Some(s.describe()),
                objective: Some(s),
                ranking,
            },
            None => Judge {
                title: ranking.title.to_string(),
                higher_is_better: ranking.higher_is_better,
                search: None,
                objective: None,
                ranking,
            },
        }
    }

    pub fn value(&self, run: &ReportRun) -> Option<f64> {
        match &self.objective {
            Some(s) => run
                .curve(&s.objective.split, &s.objective.key)?
                .iter()
                .map(|p| p.2)
                .reduce(|a, b| if s.better(b, a) { b } else { a }),
            None => self.ranking.value(run),
        }
    }
}
