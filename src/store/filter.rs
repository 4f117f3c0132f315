//! `--where` and `--sort` over runs.
//!
//! ```text
//! expr  := or ;  or := and ("or" and)* ;  and := not ("and" not)*
//! not   := "not" not | "(" expr ")" | field op value
//! op    := = == != < <= > >= ~        (~: contains)
//! field := id | name | status | host | sweep | created | duration | error | tag
//!        | params.KEY | metrics.SPLIT/KEY (last) | min.SPLIT/KEY | max.SPLIT/KEY
//! ```
//! Numbers compare numerically, everything else as text; a missing field
//! matches nothing (but `!=`). `tag` is any of the run's tags: `tag=best`
//! holds when one of them is `best`, `tag!=best` when none is.

use std::cmp::Ordering;

use super::query::RunInfo;
use super::StoreError;

#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Num(f64),
    Text(String),
}

impl FieldValue {
    fn parse(text: &str) -> FieldValue {
        match text.parse::<f64>() {
            Ok(x) => FieldValue::Num(x),
            Err(_) => FieldValue::Text(text.to_string()),
        }
    }

    fn cmp(&self, other: &FieldValue) -> Ordering {
        match (self, other) {
            (FieldValue::Num(a), FieldValue::Num(b)) => a.total_cmp(b),
            (a, b) => a.text().cmp(&b.text()),
        }
    }

    fn text(&self) -> String {
        match self {
            FieldValue::Num(x) => x.to_string(),
            FieldValue::Text(s) => s.clone(),
        }
    }
}

/// The value of a named field of a run.
pub fn field(run: &RunInfo, name: &str) -> Option<FieldValue> {
    let text = |s: &str| Some(FieldValue::Text(s.to_string()));
    match name {
        "id" => text(&run.id),
        "name" => text(&run.name),
        "status" => text(run.status.as_str()),
        "host" => text(&run.host),
        "tag" => (!run.tags.is_empty()).then(|| FieldValue::Text(run.tags.join(","))),
        "sweep" => run.sweep_id.as_deref().and_then(text),
        "error" => run.error.as_deref().and_then(text),
        "created" => Some(FieldValue::Num(run.created)),
        "duration" => Some(FieldValue::Num(run.duration())),
        _ => {
            if let Some(key) = name.strip_prefix("params.") {
                let p = run.params.get(key)?;
                return Some(match p.num {
                    Some(x) if p.value.parse::<f64>().is_ok() => FieldValue::Num(x),
                    _ => FieldValue::Text(p.value.clone()),
                });
            }
            let (which, rest) = name.split_once('.')?;
            let (split, key) = rest.split_once('/')?;
            let s = run.summary(split, key)?;
            let v = match which {
                "metrics" => s.last,
                "min" => s.min,
                "max" => s.max,
                _ => None,
            }?;
            Some(FieldValue::Num(v))
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: String,
        op: Op,
        value: FieldValue,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, StoreError> {
        // The expression shortened: its fault must fit the line.
        let shown = crate::text::shorten(text, 60);
        let tokens = tokenize(text).map_err(|why| StoreError::BadFilter {
            text: shown.clone(),
            why,
        })?;
        let mut p = Parser {
            tokens,
            pos: 0,
            depth: 0,
            terms: 0,
        };
        let expr = p.or().and_then(|e| match p.peek() {
            None => Ok(e),
            Some(t) => Err(format!("unexpected `{}`", t.text())),
        });
        expr.map_err(|why| StoreError::BadFilter { text: shown, why })
    }

    pub fn matches(&self, run: &RunInfo) -> bool {
        match self {
            Expr::Or(a, b) => a.matches(run) || b.matches(run),
            Expr::And(a, b) => a.matches(run) && b.matches(run),
            Expr::Not(e) => !e.matches(run),
            Expr::Cmp {
                field: f,
                op,
                value,
            } if f == "tag" => {
                let mut tags = run.tags.iter().map(|t| FieldValue::parse(t));
                match op {
                    Op::Ne => !tags.any(|t| compare(&t, Op::Eq, value)),
                    _ => tags.any(|t| compare(&t, *op, value)),
                }
            }
            Expr::Cmp {
                field: f,
                op,
                value,
            } => match field(run, f) {
                None => *op == Op::Ne,
                Some(actual) => compare(&actual, *op, value),
            },
        }
    }
}

fn compare(actual: &FieldValue, op: Op, value: &FieldValue) -> bool {
    match op {
        Op::Contains => actual.text().contains(&value.text()),
        Op::Eq => actual.cmp(value) == Ordering::Equal,
        Op::Ne => actual.cmp(value) != Ordering::Equal,
        Op::Lt => actual.cmp(value) == Ordering::Less,
        Op::Le => actual.cmp(value) != Ordering::Greater,
        Op::Gt => actual.cmp(value) == Ordering::Greater,
        Op::Ge => actual.cmp(value) != Ordering::Less,
    }
}

/// Sorts runs by a field; `-field` sorts descending; missing values go last.
pub fn sort_runs(runs: &mut [RunInfo], key: &str) {
    let (desc, name) = match key.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, key),
    };
    runs.sort_by(|a, b| match (field(a, name), field(b, name)) {
        (Some(x), Some(y)) if desc => y.cmp(&x),
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(Op),
    Open,
    Close,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(w) | Token::Quoted(w) => w.clone(),
            Token::Op(op) => format!("{op:?}"),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '"' | '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or("unclosed quote")?;
                out.push(Token::Quoted(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '=' | '!' | '<' | '>' | '~' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let (op, len) = match two.as_str() {
                    "==" => (Op::Eq, 2),
                    "!=" => (Op::Ne, 2),
                    "<=" => (Op::Le, 2),
                    ">=" => (Op::Ge, 2),
                    _ => match c {
                        '=' => (Op::Eq, 1),
                        '<' => (Op::Lt, 1),
                        '>' => (Op::Gt, 1),
                        '~' => (Op::Contains, 1),
                        _ => return Err("`!` must be followed by `=`".into()),
                    },
                };
                out.push(Token::Op(op));
                i += len;
            }
            _ => {
                let start = i;
                while i < chars.len() && !" \t()=!<>~\"'".contains(chars[i]) {
                    i += 1;
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// `not`s and parentheses open around the current term.
    depth: usize,
    /// Terms joined by `and`/`or` so far (each joins one tree level).
    terms: usize,
}

/// The deepest nesting of `not`s and parentheses an expression may have,
/// and the most terms it may join: the expression is a tree walked
/// recursively (10,000 parentheses once overflowed the stack).
const MAX_DEPTH: usize = 100;
const MAX_TERMS: usize = 1000;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.joined()?;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.keyword("and") {
            self.joined()?;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn joined(&mut self) -> Result<(), String> {
        self.terms += 1;
        if self.terms >= MAX_TERMS {
            return Err(format!("more than {MAX_TERMS} terms"));
        }
        Ok(())
    }

    /// Runs `f` one level deeper.
    fn deeper(
        &mut self,
        f: impl FnOnce(&mut Parser) -> Result<Expr, String>,
    ) -> Result<Expr, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "`not`s and parentheses nested more than {MAX_DEPTH} deep"
            ));
        }
        self.depth += 1;
        let e = f(self);
        self.depth -= 1;
        e
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.deeper(Parser::not)?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let e = self.deeper(Parser::or)?;
            return match self.next() {
                Some(Token::Close) => Ok(e),
                _ => Err("missing `)`".into()),
            };
        }
        let field = match self.next() {
            Some(Token::Word(w)) => w,
            Some(t) => return Err(format!("expected a field name, found `{}`", t.text())),
            None => return Err("expected a comparison like params.lr<1e-3".into()),
        };
        let op = match self.next() {
            Some(Token::Op(op)) => op,
            _ => {
                return Err(format!(
                    "expected an operator after `{field}` (= != < <= > >= ~)"
                ))
            }
        };
        let value = match self.next() {
            Some(Token::Word(w)) => FieldValue::parse(&w),
            Some(Token::Quoted(q)) => FieldValue::Text(q),
            _ => return Err(format!("expected a value after `{field}`")),
        };
        Ok(Expr::Cmp { field, op, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precedence_and_values() {
        let e = Expr::parse("params.lr<1e-3 and status=completed or name~base").unwrap();
        let Expr::Or(left, _) = e else {
            panic!("or binds loosest")
        };
        assert!(matches!(*left, Expr::And(..)));
        let e = Expr::parse("not (params.lr >= 0.001)").unwrap();
        assert!(matches!(e, Expr::Not(_)));
    }

    #[test]
    fn nesting_and_length_are_bounded() {
        let deep = format!("{}status=completed{}", "(".repeat(101), ")".repeat(101));
        let e = Expr::parse(&deep).unwrap_err().to_string();
        assert!(e.contains("more than 100 deep"), "{e}");
        let fine = format!("{}status=completed{}", "(".repeat(99), ")".repeat(99));
        assert!(Expr::parse(&fine).is_ok());
        let long = vec!["epoch>1"; 1001].join(" or ");
        assert!(Expr::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("1000 terms"));
        assert!(Expr::parse(&vec!["epoch>1"; 999].join(" or ")).is_ok());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for bad in ["params.lr <", "lr 3", "(a=1", "a=1 b=2", "a ! 3"] {
            let err = Expr::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
