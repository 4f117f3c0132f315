//! The per-key summary (last, min, max, count) of a batch of scalars, which
//! the writer upserts with each flush.

/// One scalar as the writer buffers it.
pub(super) struct MetricRow {
    pub step: u64,
    pub epoch: u32,
    pub split: String,
    pub key: String,
    pub value: f64,
    pub wall: f64,
}

pub(super) struct KeySummary<'a> {
    pub split: &'a str,
    pub key: &'a str,
    pub last: Option<f64>,
    pub last_step: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub count: i64,
}

pub(super) fn summarise(rows: &[MetricRow]) -> Vec<KeySummary<'_>> {
    let mut out: Vec<KeySummary> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for r in rows {
        let i = *index
            .entry((r.split.as_str(), r.key.as_str()))
            .or_insert_with(|| {
                out.push(KeySummary {
                    split: &r.split,
                    key: &r.key,
                    last: None,
                    last_step: 0,
                    min: None,
                    max: None,
                    count: 0,
                });
                out.len() - 1
            });
        let s = &mut out[i];
        s.last = (!r.value.is_nan()).then_some(r.value);
        s.last_step = r.step;
        s.count += 1;
        if r.value.is_finite() {
            s.min = Some(s.min.map_or(r.value, |m| m.min(r.value)));
            s.max = Some(s.max.map_or(r.value, |m| m.max(r.value)));
        }
    }
    out
}
