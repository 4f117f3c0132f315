//! The seed groups table: each group's runs and the mean ± std of the runs
//! table's metrics over them.

use std::fmt::Write;

use super::columns::Column;
use super::{esc, swatch};
use crate::report::groups::mean_std;
use crate::report::Report;
use crate::view::number;

pub(super) fn groups_table(page: &mut String, report: &Report, columns: &[&Column]) {
    if report.groups.is_empty() {
        return;
    }
    page.push_str("<h3>Seed groups</h3><p class=\"note\">Runs that differ only in their seed (or share the <code>--group-by</code> values), drawn in the charts as their mean in a band with the runs thin behind it. Mean ± sample standard deviation over the group's runs.</p>");
    page.push_str("<div class=\"scroll\"><table class=\"sortable\" id=\"groups-table\"><thead><tr><th></th><th>group</th><th>runs</th>");
    for c in columns {
        page.push_str(&c.th());
    }
    page.push_str("</tr></thead><tbody>\n");
    for (g, group) in report.groups.iter().enumerate() {
        let ids: Vec<String> = group
            .members
            .iter()
            .map(|&i| esc(&report.runs[i].info.id))
            .collect();
        let _ = write!(
            page,
            "<tr class=\"group-{g}\"><td>{}</td><td class=\"name\">{}</td><td class=\"num\" data-v=\"{}\" title=\"{}\">{}</td>",
            swatch(report, group.members[0], false),
            esc(&group.label),
            group.members.len(),
            ids.join(" "),
            group.members.len()
        );
        for c in columns {
            let values: Vec<f64> = group
                .members
                .iter()
                .filter_map(|&i| c.value(&report.runs[i]))
                .collect();
            match mean_std(&values) {
                Some((mean, std)) => {
                    let _ = write!(
                        page,
                        "<td class=\"num\" data-v=\"{mean}\">{} ± {}</td>",
                        number(Some(mean)),
                        number(Some(std))
                    );
                }
                None => page.push_str("<td class=\"num\" data-v=\"\">-</td>"),
            }
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div>");
}
