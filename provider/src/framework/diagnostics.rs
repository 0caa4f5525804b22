//! Diagnostics (errors and warnings) and the attribute paths they point at.

use std::fmt;

/// One step of a path into a value: an attribute, a list index or a map key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Attribute(String),
    Index(i64),
    Key(String),
}

/// A path to an attribute, such as `member[1].host`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttributePath(pub Vec<PathStep>);

impl AttributePath {
    pub fn root(name: &str) -> AttributePath {
        AttributePath(vec![PathStep::Attribute(name.to_string())])
    }

    pub fn attribute(&self, name: &str) -> AttributePath {
        let mut steps = self.0.clone();
        steps.push(PathStep::Attribute(name.to_string()));
        AttributePath(steps)
    }

    pub fn index(&self, index: usize) -> AttributePath {
        let mut steps = self.0.clone();
        steps.push(PathStep::Index(index as i64));
        AttributePath(steps)
    }

    /// The element of a map attribute under `key`.
    pub fn key(&self, key: &str) -> AttributePath {
        let mut steps = self.0.clone();
        steps.push(PathStep::Key(key.to_string()));
        AttributePath(steps)
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attribute(name) if i == 0 => write!(f, "{name}")?,
                PathStep::Attribute(name) => write!(f, ".{name}")?,
                PathStep::Index(index) => write!(f, "[{index}]")?,
                PathStep::Key(key) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub path: Option<AttributePath>,
}

/// The diagnostics collected while serving one request.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Severity::Error, summary.into(), detail.into(), None);
    }

    pub fn error_at(
        &mut self,
        path: AttributePath,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(Severity::Error, summary.into(), detail.into(), Some(path));
    }

    pub fn warning(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Severity::Warning, summary.into(), detail.into(), None);
    }

    pub fn warning_at(
        &mut self,
        path: AttributePath,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(Severity::Warning, summary.into(), detail.into(), Some(path));
    }

    fn push(
        &mut self,
        severity: Severity,
        summary: String,
        detail: String,
        path: Option<AttributePath>,
    ) {
        self.0.push(Diagnostic {
            severity,
            summary,
            detail,
            path,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_display_reads_like_terraform() {
        let path = AttributePath::root("member").index(2).attribute("host");
        assert_eq!(path.to_string(), "member[2].host");
    }

    #[test]
    fn only_errors_count_as_errors() {
        let mut diags = Diagnostics::default();
        diags.warning("w", "");
        assert!(!diags.has_errors());
        diags.error_at(AttributePath::root("a"), "e", "");
        assert!(diags.has_errors());
    }
}
