//! A plain aligned text table (no box drawing: easy to grep and paste).

/// The widest a cell of any column but the last is shown.
pub const MAX_CELL: usize = 60;

fn cut(cell: &str) -> String {
    if cell.chars().count() <= MAX_CELL {
        cell.to_string()
    } else {
        cell.chars().take(MAX_CELL - 1).chain(['…']).collect()
    }
}

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// A row; control characters in its cells are shown escaped
    /// (text::printable).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| crate::text::printable(&c.into()).into_owned())
                .collect(),
        );
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text. A cell of any column but the last is cut to
    /// `MAX_CELL` characters: one run named with 65,536 characters must not
    /// push every other column off the screen (nor past what `format!` pads).
    pub fn render(&self) -> String {
        let n = self.header.len();
        let cell_of = |cells: &[String], i: usize| -> String {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            if i + 1 == n {
                cell.to_string()
            } else {
                cut(cell)
            }
        };
        let mut widths: Vec<usize> = (0..n)
            .map(|i| cell_of(&self.header, i).chars().count())
            .collect();
        for row in &self.rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(cell_of(row, i).chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = cell_of(cells, i);
                let pad = w - cell.chars().count();
                s.push_str(&cell);
                if i + 1 < n {
                    s.extend(std::iter::repeat_n(' ', pad + 2));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn columns_align() {
        let mut t = Table::new(["ID", "NAME"]);
        t.row(["a", "first"]);
        t.row(["bbbb", "x"]);
        assert_eq!(t.render(), "ID    NAME\na     first\nbbbb  x\n");
    }

    #[test]
    fn huge_cells_are_cut_not_a_panic() {
        let mut t = Table::new(["NAME", "ID"]);
        t.row(["n".repeat(70_000), "abc".into()]);
        let text = t.render();
        let line = text.lines().nth(1).unwrap();
        assert_eq!(line.chars().count(), super::MAX_CELL + 2 + 3);
        assert!(line.ends_with("…  abc"), "{line}");
    }
}
