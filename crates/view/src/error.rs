//! The crate's error type.

/// Everything that can go wrong loading a ViewDefinition or evaluating it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The view file is not JSON.
    #[error("{file}: not valid JSON: {message}")]
    Json {
        /// The view's file name (as given by the caller).
        file: String,
        /// The JSON parser's message.
        message: String,
    },
    /// The view is JSON but not a valid ViewDefinition.
    #[error("{file}: {location}: {message}")]
    InvalidView {
        /// The view's file name.
        file: String,
        /// JSON location, e.g. `select[1].column[3].name`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A FHIRPath expression in the view does not parse (boxed: it carries six fields).
    #[error("{0}")]
    FhirPath(Box<FhirPathSyntax>),
    /// Two views feed one table (same `name`) but declare different columns.
    #[error("{file}: view `{table}` declares different columns than {other_file}: {message}")]
    TableMismatch {
        /// The table (the views' `name`, lower case).
        table: String,
        /// The view that disagrees.
        file: String,
        /// The first view of that table.
        other_file: String,
        /// The first difference.
        message: String,
    },
    /// A runtime error the SQL on FHIR spec defines (e.g. many values in a non-collection
    /// column, a `where` that is not boolean). Its text names the view and the expression, not
    /// the resource: a resource id is a beneficiary's or a claim's, and this text reaches row
    /// errors and the run report's counts of them (the resource is the `resource_id` field, and
    /// the row-errors file's own column).
    #[error("{file}: {location}: {message}")]
    Evaluation {
        /// The view's file name.
        file: String,
        /// JSON location of the failing expression.
        location: String,
        /// The resource's id (`(no id)` when it has none).
        resource_id: String,
        /// What went wrong.
        message: String,
    },
}

/// Where a view's FHIRPath expression failed to parse; see [`Error::FhirPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}: {location}: FHIRPath `{expression}` at character {position}: expected {expected}, found {found}"
)]
pub struct FhirPathSyntax {
    /// The view's file name.
    pub file: String,
    /// JSON location of the expression, e.g. `select[1].column[3].path`.
    pub location: String,
    /// The expression.
    pub expression: String,
    /// 1-based character position in the expression.
    pub position: usize,
    /// What the parser expected.
    pub expected: String,
    /// What it found.
    pub found: String,
}
