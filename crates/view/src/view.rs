//! ViewDefinition loading, validation and evaluation.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::cell::{Cell, Column, ColumnType, RowError, Schema, to_cell};
use crate::decimal::Decimal;
use crate::error::{Error, FhirPathSyntax};
use crate::eval::{Coll, Env, EvalError, Item, eval};
use crate::fast::Fast;
use crate::fhirpath::{
    Expr, Function, Literal, RootReads, Variable, compile, share_row_constants, written,
};
use crate::node::Node;

/// Keys a ViewDefinition may have besides the ones the engine uses (resource metadata).
const VIEW_METADATA_KEYS: &[&str] = &[
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
    "url",
    "identifier",
    "version",
    "name",
    "title",
    "status",
    "experimental",
    "date",
    "publisher",
    "contact",
    "description",
    "useContext",
    "copyright",
    "purpose",
    "fhirVersion",
    "profile",
];

/// Deepest `repeat` recursion before it is treated as a cycle.
const MAX_REPEAT_DEPTH: usize = 256;

/// A path as the view runs it: the expression, and its compiled form when it has one of the
/// shapes [`Fast`] covers (same value, found without the general evaluator).
#[derive(Debug)]
struct Compiled {
    expr: Expr,
    fast: Option<Fast>,
}

impl Compiled {
    fn new(expr: Expr) -> Self {
        Compiled {
            fast: Fast::compile(&expr),
            expr,
        }
    }

    /// The path's value with `focus` as `$this`.
    fn eval<'a, N: Node<'a>>(
        &'a self,
        focus: &[Item<'a, N>],
        env: &Env<'a, N>,
    ) -> Result<Coll<'a, N>, EvalError> {
        if let Some(v) = self.fast.as_ref().and_then(|f| f.eval(focus, env)) {
            return Ok(v);
        }
        eval(&self.expr, focus, None, env)
    }
}

#[derive(Debug)]
enum Iteration {
    Once,
    ForEach(Compiled, String),
    ForEachOrNull(Compiled, String),
    Repeat(Vec<Expr>, String),
}

#[derive(Debug)]
struct ColumnPlan {
    expr: Compiled,
    /// The path reads neither the focus nor `%rowIndex`: its value is the same on every row of
    /// one resource's `forEach`/`repeat`, so it is evaluated once per iteration.
    row_invariant: bool,
    /// The path is `{}` and the column not a collection: its cell is NULL on every row (an
    /// unmapped CCLF field), put there without evaluating anything.
    null: bool,
    collection: bool,
    ty: ColumnType,
    name: String,
    location: String,
}

#[derive(Debug)]
struct SelectPlan {
    iteration: Iteration,
    columns: Vec<ColumnPlan>,
    selects: Vec<SelectPlan>,
    union_all: Vec<SelectPlan>,
    /// Number of output columns this select (and everything under it) produces.
    width: usize,
}

impl SelectPlan {
    /// Adds what this select and those under it read of the root to `reads` (see
    /// [`RootReads`]), its focus being (`root`) or not being the root object.
    fn reads(&self, reads: &mut RootReads, root: bool) {
        let focus = match &self.iteration {
            Iteration::Once => root,
            Iteration::ForEach(c, _) | Iteration::ForEachOrNull(c, _) => reads.expr(&c.expr, root),
            // The paths run on the focus, then on what they gave: the root too, when a path
            // gives it.
            Iteration::Repeat(paths, _) => {
                let gives_root = paths.iter().fold(false, |any, p| reads.expr(p, root) | any);
                if gives_root && !root {
                    for p in paths {
                        reads.expr(p, true);
                    }
                }
                gives_root
            }
        };
        for c in &self.columns {
            reads.all |= reads.expr(&c.expr.expr, focus);
        }
        for s in self.selects.iter().chain(&self.union_all) {
            s.reads(reads, focus);
        }
    }
}

/// A compiled, validated ViewDefinition: FHIRPath parsed once, ready to evaluate on any number of
/// resources.
#[derive(Debug)]
pub struct ViewDefinition {
    file: String,
    name: Option<String>,
    resource: String,
    constants: Vec<Literal>,
    wheres: Vec<(Compiled, String)>,
    root: SelectPlan,
    schema: Schema,
    many_values: ManyValues,
}

/// What a column without `collection: true` does when its path gives more than one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManyValues {
    /// The SQL on FHIR rule: an error for the whole resource (no rows from it). The default,
    /// and what the official test suite checks.
    #[default]
    Error,
    /// Values that are all equal are that one value; values that differ make the cell NULL
    /// with a [`RowError`] naming the column, and the row is kept. One odd cell never drops a
    /// claim's rows (claimline's loads use this).
    OneOrNull,
}

/// Rows produced by evaluating a view, plus the values that did not fit their columns.
/// Reuse one per view across resources; [`Rows::clear`] keeps the allocations.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rows {
    /// One `Vec<Cell>` per row, cells in [`ViewDefinition::schema`] order.
    pub rows: Vec<Vec<Cell>>,
    /// Values that became NULL because they did not fit their column.
    pub errors: Vec<RowError>,
}

impl Rows {
    /// Empties the rows and errors.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.errors.clear();
    }

    /// Row errors counted per column, in column-name order.
    pub fn error_counts(&self) -> std::collections::BTreeMap<&str, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for e in &self.errors {
            *counts.entry(e.column.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

struct Loader<'f> {
    file: &'f str,
    constant_names: Vec<String>,
    columns: Vec<Column>,
    /// The view's row constants so far, shared between its expressions.
    row_consts: RefCell<Vec<Arc<Expr>>>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Loader<'_> {
    fn invalid(&self, location: &str, message: impl Into<String>) -> Error {
        Error::InvalidView {
            file: self.file.to_owned(),
            location: location.to_owned(),
            message: message.into(),
        }
    }

    fn object<'v>(&self, v: &'v Value, location: &str) -> Result<&'v Map<String, Value>, Error> {
        v.as_object().ok_or_else(|| {
            self.invalid(
                location,
                format!("expected an object, found {}", type_name(v)),
            )
        })
    }

    fn check_keys(
        &self,
        obj: &Map<String, Value>,
        location: &str,
        allowed: &[&str],
    ) -> Result<(), Error> {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                let at = if location.is_empty() {
                    k.clone()
                } else {
                    format!("{location}.{k}")
                };
                return Err(self.invalid(
                    &at,
                    format!("unknown key `{k}` (allowed here: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn string<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        location: &str,
    ) -> Result<Option<&'v str>, Error> {
        match obj.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.invalid(
                &join(location, key),
                format!("expected a string, found {}", type_name(v)),
            )),
        }
    }

    fn array<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        location: &str,
    ) -> Result<&'v [Value], Error> {
        match obj.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(v) => Err(self.invalid(
                &join(location, key),
                format!("expected an array, found {}", type_name(v)),
            )),
        }
    }

    fn fhirpath(&self, expression: &str, location: &str) -> Result<Expr, Error> {
        compile(expression, &self.constant_names)
            .map(|e| {
                let mut e = crate::fhirpath::hoist_row_constants(e);
                share_row_constants(&mut e, &mut self.row_consts.borrow_mut());
                e
            })
            .map_err(|e| {
                Error::FhirPath(Box::new(FhirPathSyntax {
                    file: self.file.to_owned(),
                    location: location.to_owned(),
                    expression: expression.to_owned(),
                    position: e.position,
                    expected: e.expected,
                    found: e.found,
                }))
            })
    }

    fn constant(&self, v: &Value, location: &str) -> Result<(String, Literal), Error> {
        let obj = self.object(v, location)?;
        let name = self
            .string(obj, "name", location)?
            .ok_or_else(|| self.invalid(location, "constant needs a `name`"))?;
        if !valid_name(name) {
            return Err(self.invalid(
                &join(location, "name"),
                format!("`{name}` is not a valid constant name"),
            ));
        }
        let values: Vec<(&String, &Value)> =
            obj.iter().filter(|(k, _)| k.starts_with("value")).collect();
        for k in obj.keys() {
            if k != "name" && !k.starts_with("value") && k != "id" && k != "extension" {
                return Err(self.invalid(
                    &join(location, k),
                    format!("unknown key `{k}` in a constant"),
                ));
            }
        }
        let [(key, value)] = values.as_slice() else {
            return Err(self.invalid(
                location,
                format!(
                    "constant `{name}` needs exactly one value[x], found {}",
                    values.len()
                ),
            ));
        };
        let at = join(location, key);
        let bad = || {
            self.invalid(
                &at,
                format!("{key} has the wrong JSON type ({})", type_name(value)),
            )
        };
        let text = || value.as_str().map(str::to_owned).ok_or_else(bad);
        let lit = match key.as_str() {
            "valueBoolean" => Literal::Bool(value.as_bool().ok_or_else(bad)?),
            "valueInteger" | "valuePositiveInt" | "valueUnsignedInt" | "valueInteger64" => {
                Literal::Integer(Node::as_i64(*value).ok_or_else(bad)?)
            }
            "valueDecimal" => Literal::Decimal(
                Node::number_text(*value)
                    .and_then(Decimal::parse)
                    .ok_or_else(bad)?,
            ),
            "valueDate" => Literal::Date(text()?),
            "valueDateTime" | "valueInstant" => Literal::DateTime(text()?),
            "valueTime" => Literal::Time(text()?),
            "valueString" | "valueCode" | "valueId" | "valueUri" | "valueUrl"
            | "valueCanonical" | "valueOid" | "valueUuid" | "valueMarkdown"
            | "valueBase64Binary" => Literal::String(text()?),
            other => return Err(self.invalid(&at, format!("unsupported constant type `{other}`"))),
        };
        Ok((name.to_owned(), lit))
    }

    fn column(&mut self, v: &Value, location: &str) -> Result<ColumnPlan, Error> {
        let obj = self.object(v, location)?;
        self.check_keys(
            obj,
            location,
            &[
                "name",
                "path",
                "description",
                "collection",
                "type",
                "tag",
                "extension",
            ],
        )?;
        let name = self
            .string(obj, "name", location)?
            .ok_or_else(|| self.invalid(location, "column needs a `name`"))?;
        if !valid_name(name) {
            return Err(self.invalid(
                &join(location, "name"),
                format!("`{name}` is not a valid column name (letters, digits and `_`, starting with a letter)"),
            ));
        }
        let path_location = join(location, "path");
        let path = self
            .string(obj, "path", location)?
            .ok_or_else(|| self.invalid(location, format!("column `{name}` needs a `path`")))?;
        let expr = self.fhirpath(path, &path_location)?;
        let collection = match obj.get("collection") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(self.invalid(
                    &join(location, "collection"),
                    format!("expected a boolean, found {}", type_name(v)),
                ));
            }
        };
        let fhir_type = self.string(obj, "type", location)?;
        let description = self.string(obj, "description", location)?;
        let mut tags = Vec::new();
        for (i, t) in self.array(obj, "tag", location)?.iter().enumerate() {
            let at = format!("{location}.tag[{i}]");
            let tobj = self.object(t, &at)?;
            self.check_keys(tobj, &at, &["name", "value"])?;
            let (Some(n), Some(val)) = (
                self.string(tobj, "name", &at)?,
                self.string(tobj, "value", &at)?,
            ) else {
                return Err(self.invalid(&at, "a tag needs `name` and `value`"));
            };
            tags.push((n.to_owned(), val.to_owned()));
        }
        let ansi = tags
            .iter()
            .find(|(n, _)| n == "ansi/type")
            .map(|(_, v)| v.as_str());
        let ty = ColumnType::from_fhir(fhir_type, ansi);
        self.columns.push(Column {
            name: name.to_owned(),
            fhir_type: fhir_type.map(str::to_owned),
            ty,
            collection,
            description: description.map(str::to_owned),
            tags,
        });
        Ok(ColumnPlan {
            row_invariant: row_invariant(&expr),
            null: matches!(expr, Expr::Empty) && !collection,
            expr: Compiled::new(expr),
            collection,
            ty,
            name: name.to_owned(),
            location: path_location,
        })
    }

    fn select(&mut self, v: &Value, location: &str) -> Result<SelectPlan, Error> {
        let obj = self.object(v, location)?;
        self.check_keys(
            obj,
            location,
            &[
                "column",
                "select",
                "forEach",
                "forEachOrNull",
                "repeat",
                "unionAll",
                "extension",
                "description",
            ],
        )?;
        let iterations = ["forEach", "forEachOrNull", "repeat"]
            .iter()
            .filter(|k| obj.contains_key(**k))
            .count();
        if iterations > 1 {
            return Err(self.invalid(
                location,
                "only one of forEach, forEachOrNull and repeat is allowed",
            ));
        }
        let iteration = if let Some(p) = self.string(obj, "forEach", location)? {
            let at = join(location, "forEach");
            Iteration::ForEach(Compiled::new(self.fhirpath(p, &at)?), at)
        } else if let Some(p) = self.string(obj, "forEachOrNull", location)? {
            let at = join(location, "forEachOrNull");
            Iteration::ForEachOrNull(Compiled::new(self.fhirpath(p, &at)?), at)
        } else if obj.contains_key("repeat") {
            let at = join(location, "repeat");
            let paths = self.array(obj, "repeat", location)?;
            if paths.is_empty() {
                return Err(self.invalid(&at, "repeat needs at least one path"));
            }
            let mut exprs = Vec::new();
            for (i, p) in paths.iter().enumerate() {
                let pat = format!("{at}[{i}]");
                let s = p.as_str().ok_or_else(|| {
                    self.invalid(&pat, format!("expected a string, found {}", type_name(p)))
                })?;
                exprs.push(self.fhirpath(s, &pat)?);
            }
            Iteration::Repeat(exprs, at)
        } else {
            Iteration::Once
        };
        let start = self.columns.len();
        let mut columns = Vec::new();
        for (i, c) in self.array(obj, "column", location)?.iter().enumerate() {
            columns.push(self.column(c, &format!("{location}.column[{i}]"))?);
        }
        let mut selects = Vec::new();
        for (i, s) in self.array(obj, "select", location)?.iter().enumerate() {
            selects.push(self.select(s, &format!("{location}.select[{i}]"))?);
        }
        let mut union_all = Vec::new();
        let branches = self.array(obj, "unionAll", location)?;
        let mut first_branch: Option<Vec<Column>> = None;
        for (i, s) in branches.iter().enumerate() {
            let at = format!("{location}.unionAll[{i}]");
            let before = self.columns.len();
            union_all.push(self.select(s, &at)?);
            let branch: Vec<Column> = self.columns.drain(before..).collect();
            match &first_branch {
                None => first_branch = Some(branch),
                Some(first) => {
                    let names =
                        |cs: &[Column]| cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
                    if names(first) != names(&branch) {
                        return Err(self.invalid(
                            &at,
                            format!(
                                "unionAll branches must have the same columns in the same order: [{}] vs [{}]",
                                names(first).join(", "),
                                names(&branch).join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(first) = first_branch {
            self.columns.extend(first);
        }
        if columns.is_empty() && selects.is_empty() && union_all.is_empty() {
            return Err(self.invalid(location, "a select needs `column`, `select` or `unionAll`"));
        }
        Ok(SelectPlan {
            iteration,
            columns,
            selects,
            union_all,
            width: self.columns.len() - start,
        })
    }
}

/// Does `e` read `%rowIndex` anywhere?
fn reads_row_index(e: &Expr) -> bool {
    match e {
        Expr::Variable(Variable::RowIndex) => true,
        Expr::Empty | Expr::Literal(_) | Expr::This | Expr::Index | Expr::Variable(_) => false,
        Expr::Member(input, _) => input.as_deref().is_some_and(reads_row_index),
        Expr::Call(input, _, args) => {
            input.as_deref().is_some_and(reads_row_index) || args.iter().any(reads_row_index)
        }
        Expr::Indexer(a, b) | Expr::Binary(_, a, b) => reads_row_index(a) || reads_row_index(b),
        Expr::Negate(x) => reads_row_index(x),
        Expr::RowConst(x) => reads_row_index(x),
    }
}

/// Is the value of `e` the same for every focus and row of one resource: it reads neither
/// `$this`, `$index`, the implicit focus (a member path or function without an input) nor
/// `%rowIndex`? Lambda arguments (`where`, `select`, `exists`, `all`) see their own items as
/// focus, so only `%rowIndex` matters inside them.
fn row_invariant(e: &Expr) -> bool {
    match e {
        Expr::Empty | Expr::Literal(_) => true,
        Expr::Variable(v) => !matches!(v, Variable::RowIndex),
        Expr::This | Expr::Index | Expr::Member(None, _) => false,
        Expr::Member(Some(input), _) => row_invariant(input),
        Expr::Call(input, f, args) => {
            let lambda = matches!(
                f,
                Function::Where | Function::Select | Function::Exists | Function::All
            );
            let args_ok = if lambda {
                !args.iter().any(reads_row_index)
            } else {
                args.iter().all(row_invariant)
            };
            match input {
                Some(input) => row_invariant(input) && args_ok,
                // `iif(c, a, b)` evaluates its arguments on the focus (one item in a row) and
                // reads nothing else of it; every other input-less function reads the focus.
                None => *f == Function::Iif && args_ok,
            }
        }
        Expr::Indexer(a, b) | Expr::Binary(_, a, b) => row_invariant(a) && row_invariant(b),
        Expr::Negate(x) => row_invariant(x),
        Expr::RowConst(x) => row_invariant(x),
    }
}

fn join(location: &str, key: &str) -> String {
    if location.is_empty() {
        key.to_owned()
    } else {
        format!("{location}.{key}")
    }
}

impl SelectPlan {
    /// Drops every compiled path, so the view runs on the general evaluator alone (tests
    /// compare the two).
    #[cfg(test)]
    fn drop_fast_paths(&mut self) {
        if let Iteration::ForEach(c, _) | Iteration::ForEachOrNull(c, _) = &mut self.iteration {
            c.fast = None;
        }
        self.columns.iter_mut().for_each(|c| c.expr.fast = None);
        self.selects
            .iter_mut()
            .for_each(SelectPlan::drop_fast_paths);
        self.union_all
            .iter_mut()
            .for_each(SelectPlan::drop_fast_paths);
    }

    #[cfg(test)]
    fn fast_paths(&self) -> usize {
        let own = matches!(&self.iteration,
            Iteration::ForEach(c, _) | Iteration::ForEachOrNull(c, _) if c.fast.is_some());
        usize::from(own)
            + self
                .columns
                .iter()
                .filter(|c| c.expr.fast.is_some())
                .count()
            + self
                .selects
                .iter()
                .map(SelectPlan::fast_paths)
                .sum::<usize>()
            + self
                .union_all
                .iter()
                .map(SelectPlan::fast_paths)
                .sum::<usize>()
    }
}

impl ViewDefinition {
    /// The view with every path on the general evaluator (see [`crate::fast`]).
    #[cfg(test)]
    pub(crate) fn without_fast_paths(mut self) -> Self {
        self.wheres.iter_mut().for_each(|(w, _)| w.fast = None);
        self.root.drop_fast_paths();
        self
    }

    /// How many of the view's paths have a compiled form.
    #[cfg(test)]
    pub(crate) fn fast_paths(&self) -> usize {
        self.wheres.iter().filter(|(w, _)| w.fast.is_some()).count() + self.root.fast_paths()
    }

    /// What a column without `collection: true` does with more than one value
    /// ([`ManyValues::Error`] unless set).
    pub fn set_many_values(&mut self, policy: ManyValues) {
        self.many_values = policy;
    }

    /// Parses and validates a ViewDefinition from JSON text; `file` names it in errors.
    ///
    /// # Errors
    /// [`Error::Json`], [`Error::InvalidView`] or [`Error::FhirPath`], each naming the file and the
    /// JSON location.
    pub fn from_json(text: &str, file: &str) -> Result<Self, Error> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Json {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_value(&value, file)
    }

    /// Validates and compiles a ViewDefinition already parsed as JSON.
    ///
    /// # Errors
    /// As [`ViewDefinition::from_json`].
    pub fn from_value(value: &Value, file: &str) -> Result<Self, Error> {
        let mut loader = Loader {
            file,
            constant_names: Vec::new(),
            row_consts: RefCell::default(),
            columns: Vec::new(),
        };
        let obj = loader.object(value, "(root)")?;
        let mut allowed: Vec<&str> = VIEW_METADATA_KEYS.to_vec();
        allowed.extend(["resource", "constant", "select", "where"]);
        loader.check_keys(obj, "", &allowed)?;
        if let Some(rt) = loader.string(obj, "resourceType", "")?
            && rt != "ViewDefinition"
        {
            return Err(loader.invalid(
                "resourceType",
                format!("expected `ViewDefinition`, found `{rt}`"),
            ));
        }
        let resource = loader.string(obj, "resource", "")?.ok_or_else(|| {
            loader.invalid(
                "resource",
                "missing: the FHIR resource type this view reads",
            )
        })?;
        if !resource.starts_with(|c: char| c.is_ascii_uppercase()) || !valid_name(resource) {
            return Err(loader.invalid(
                "resource",
                format!("`{resource}` is not a resource type name"),
            ));
        }
        let name = loader.string(obj, "name", "")?.map(str::to_owned);
        let mut constants = Vec::new();
        for (i, c) in loader.array(obj, "constant", "")?.iter().enumerate() {
            let at = format!("constant[{i}]");
            let (n, lit) = loader.constant(c, &at)?;
            if loader.constant_names.contains(&n) {
                return Err(loader.invalid(&at, format!("duplicate constant `{n}`")));
            }
            loader.constant_names.push(n);
            constants.push(lit);
        }
        let mut wheres = Vec::new();
        for (i, w) in loader.array(obj, "where", "")?.iter().enumerate() {
            let at = format!("where[{i}]");
            let wobj = loader.object(w, &at)?;
            loader.check_keys(wobj, &at, &["path", "description", "extension"])?;
            let path = loader
                .string(wobj, "path", &at)?
                .ok_or_else(|| loader.invalid(&at, "where needs a `path`"))?;
            let pat = join(&at, "path");
            wheres.push((Compiled::new(loader.fhirpath(path, &pat)?), pat));
        }
        let selects = loader.array(obj, "select", "")?;
        if selects.is_empty() {
            return Err(loader.invalid("select", "a view needs at least one select"));
        }
        let mut plans = Vec::new();
        for (i, s) in selects.iter().enumerate() {
            plans.push(loader.select(s, &format!("select[{i}]"))?);
        }
        let mut seen = HashMap::new();
        for c in &loader.columns {
            if seen.insert(c.name.as_str(), ()).is_some() {
                return Err(loader.invalid("select", format!("duplicate column name `{}`", c.name)));
            }
        }
        let width = loader.columns.len();
        Ok(ViewDefinition {
            file: file.to_owned(),
            name,
            resource: resource.to_owned(),
            constants,
            wheres,
            root: SelectPlan {
                iteration: Iteration::Once,
                columns: Vec::new(),
                selects: plans,
                union_all: Vec::new(),
                width,
            },
            schema: Schema {
                columns: loader.columns,
            },
            many_values: ManyValues::Error,
        })
    }

    /// The view's `name` (its table), if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The resource type the view reads (`ExplanationOfBenefit`).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The file name the view was loaded as.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The output columns, in order.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The root members of a resource the view reads, with how much of each (`None`: it may
    /// read any, and its resources must be parsed whole). What a load hands to
    /// [`claimline_ndjson::Pruning`]: a resource parsed with only these members gives the view
    /// the same rows and errors as one parsed whole.
    ///
    /// ```
    /// use claimline_ndjson::Need;
    /// use claimline_view::ViewDefinition;
    ///
    /// let view = ViewDefinition::from_json(
    ///     r#"{"resource": "ExplanationOfBenefit", "select": [{"column": [
    ///         {"name": "id", "path": "getResourceKey()"},
    ///         {"name": "lines", "path": "item.count()"},
    ///         {"name": "npi", "path": "provider.identifier.value"}]}]}"#,
    ///     "header.json",
    /// )
    /// .expect("a view");
    /// let needs = view.root_needs().expect("named members only");
    /// assert_eq!(needs.need("item"), Some(Need::Count));
    /// assert_eq!(needs.need("provider"), Some(Need::Whole));
    /// assert_eq!(needs.need("id"), Some(Need::Whole));
    /// assert_eq!(needs.need("careTeam"), None);
    /// ```
    pub fn root_needs(&self) -> Option<claimline_ndjson::Needs> {
        let mut reads = RootReads::default();
        for (w, _) in &self.wheres {
            reads.all |= reads.expr(&w.expr, true);
        }
        self.root.reads(&mut reads, true);
        (!reads.all).then_some(reads.needs)
    }

    /// Evaluates the view on one resource, appending its rows (and any row errors) to `out`.
    /// A resource of another type yields no rows. All or nothing: on error, nothing is appended.
    ///
    /// # Errors
    /// [`Error::Evaluation`] for the runtime errors the spec defines: many values in a column
    /// without `collection: true`, a `where` that is not boolean, `single()` on many items, ….
    pub fn evaluate<'a, N: Node<'a>>(&'a self, resource: N, out: &mut Rows) -> Result<(), Error> {
        let filtered = self.filter(resource);
        self.evaluate_filtered(resource, &filtered, out)
    }

    /// The first step of [`ViewDefinition::evaluate`]: whether the view keeps `resource` (its
    /// type is the view's, and every `where` path is true), or the error a `where` raised.
    /// Views that keep the same resources share the answer (see [`Filters`]).
    pub fn filter<'a, N: Node<'a>>(&'a self, resource: N) -> Filtered {
        if resource.get("resourceType").and_then(|r| r.as_str()) != Some(self.resource.as_str()) {
            return Filtered(Outcome::Left);
        }
        let env = Env::new(resource, &self.constants, 0);
        let focus = Item::node(resource);
        for (at, (w, _)) in self.wheres.iter().enumerate() {
            let failed = |error| Filtered(Outcome::Failed { at, error });
            let r = match w.eval(std::slice::from_ref(&focus), &env) {
                Ok(r) => r,
                Err(e) => return failed(e),
            };
            let keep = match r.as_slice() {
                [] => false,
                [one] => match one.prim() {
                    Some(crate::eval::Prim::Bool(b)) => b,
                    _ => return failed(EvalError::new("where path must return a boolean")),
                },
                _ => {
                    return failed(EvalError::new(
                        "where path returned many values, expected one boolean",
                    ));
                }
            };
            if !keep {
                return Filtered(Outcome::Left);
            }
        }
        Filtered(Outcome::Kept)
    }

    /// Whether `other` keeps exactly the resources this view keeps: the same resource type,
    /// the same `where` paths in the same order and the same constants, each written alike (a
    /// decimal `1.0` is not `1.00`: their values differ in scale), so that either view's
    /// [`ViewDefinition::filter`] answers for both.
    pub fn same_filter(&self, other: &ViewDefinition) -> bool {
        self.filter_text() == other.filter_text()
    }

    /// What [`ViewDefinition::same_filter`] compares: the resource type, the constants and the
    /// `where` expressions as their `Debug` text shows them.
    fn filter_text(&self) -> String {
        let wheres: Vec<&Expr> = self.wheres.iter().map(|(w, _)| &w.expr).collect();
        written(&(&self.resource, &self.constants, wheres))
    }

    /// [`ViewDefinition::evaluate`] after its first step: `filtered` is what
    /// [`ViewDefinition::filter`] gave for `resource`, on this view or on one with the
    /// [same filter](ViewDefinition::same_filter). A `where` error is reported as this view's.
    ///
    /// # Errors
    /// As [`ViewDefinition::evaluate`].
    pub fn evaluate_filtered<'a, N: Node<'a>>(
        &'a self,
        resource: N,
        filtered: &Filtered,
        out: &mut Rows,
    ) -> Result<(), Error> {
        let run = Run {
            view: self,
            resource,
        };
        match &filtered.0 {
            Outcome::Left => return Ok(()),
            Outcome::Failed { at, error } => {
                let location = self.wheres.get(*at).map_or("where", |(_, l)| l.as_str());
                return Err(run.error(location, error.clone()));
            }
            Outcome::Kept => {}
        }
        let env = Env::new(resource, &self.constants, 0);
        let focus = Item::node(resource);
        let errors_before = out.errors.len();
        match run.select(&self.root, &focus, &env, &mut out.errors) {
            Ok(rows) => out.rows.extend(rows),
            Err(e) => {
                // All or nothing per resource: no rows and no row errors from a failed one.
                out.errors.truncate(errors_before);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// What a view's resource type and `where` paths make of one resource; see
/// [`ViewDefinition::filter`].
#[derive(Debug, Clone, PartialEq)]
pub struct Filtered(Outcome);

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Kept: the view's rows come from it.
    Kept,
    /// Another resource type, or a `where` path that is not true.
    Left,
    /// `where[at]` failed.
    Failed { at: usize, error: EvalError },
}

impl Filtered {
    /// Whether the view keeps the resource (`false` as well when a `where` failed).
    pub fn kept(&self) -> bool {
        self.0 == Outcome::Kept
    }
}

/// Which views of a set keep the same resources ([`ViewDefinition::same_filter`]), worked out
/// once, so that a resource's `where` paths are evaluated once for all views that share them:
/// five of the built-in CCLF views keep the institutional claims by one `where`.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// View index → its group (the first view of the set with its filter).
    group: Vec<usize>,
}

/// One resource's answers per group of [`Filters`]: [`FilterMemo::clear`] it before the next
/// resource.
#[derive(Debug, Clone, Default)]
pub struct FilterMemo(Vec<Option<Filtered>>);

impl FilterMemo {
    /// Forgets the answers (for the next resource), keeping the allocation.
    pub fn clear(&mut self) {
        self.0.iter_mut().for_each(|f| *f = None);
    }
}

impl Filters {
    /// The groups of `views` (view `i` is the `i`-th of the iterator).
    pub fn new<'v>(views: impl IntoIterator<Item = &'v ViewDefinition>) -> Self {
        // Each view's text once, not once per pair (`same_filter`'s test).
        let texts: Vec<String> = views.into_iter().map(ViewDefinition::filter_text).collect();
        let group = texts
            .iter()
            .enumerate()
            .map(|(i, t)| texts[..i].iter().position(|u| u == t).unwrap_or(i))
            .collect();
        Filters { group }
    }

    /// [`ViewDefinition::filter`] of `view` (view `i` of the set) on `resource`, evaluated
    /// once per group of views that share it while `memo` holds this resource's answers.
    pub fn filter<'a, N: Node<'a>>(
        &self,
        i: usize,
        view: &'a ViewDefinition,
        resource: N,
        memo: &mut FilterMemo,
    ) -> Filtered {
        let Some(&g) = self.group.get(i) else {
            return view.filter(resource);
        };
        if memo.0.len() < self.group.len() {
            memo.0.resize(self.group.len(), None);
        }
        memo.0[g]
            .get_or_insert_with(|| view.filter(resource))
            .clone()
    }
}

struct Run<'a, N> {
    view: &'a ViewDefinition,
    resource: N,
}

type Partial = Vec<Vec<Cell>>;

/// A row-invariant column's cell and the row errors converting it produced, reused on every
/// row of an iteration (each row gets its own copy of the errors, as if evaluated again).
struct Cached {
    cell: Cell,
    errors: Vec<RowError>,
}

/// Every row of `left` joined with every row of `right` (left-major order). Moves cells where
/// it can: one left row (the common case: a header's columns, or none at all, next to a
/// `forEach`) is copied onto each right row without copying the right rows' cells.
fn cross(left: Partial, right: Partial) -> Partial {
    if left.len() == 1 {
        let mut left = left;
        let l = left.pop().unwrap_or_default();
        if l.is_empty() {
            return right;
        }
        return right
            .into_iter()
            .map(|r| {
                let mut row = Vec::with_capacity(l.len() + r.len());
                row.extend(l.iter().cloned());
                row.extend(r);
                row
            })
            .collect();
    }
    if right.len() == 1 {
        let mut right = right;
        let r = right.pop().unwrap_or_default();
        return left
            .into_iter()
            .map(|mut row| {
                row.extend(r.iter().cloned());
                row
            })
            .collect();
    }
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in &left {
        for r in &right {
            let mut row = Vec::with_capacity(l.len() + r.len());
            row.extend(l.iter().cloned());
            row.extend(r.iter().cloned());
            out.push(row);
        }
    }
    out
}

impl<'a, N: Node<'a>> Run<'a, N> {
    /// The resource's id as an evaluation error names it.
    fn resource_id(&self) -> String {
        self.row_error_id().unwrap_or_else(|| "(no id)".to_owned())
    }

    /// The resource's id as a row error names it (`None`: it has none).
    fn row_error_id(&self) -> Option<String> {
        self.resource
            .get("id")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    fn error(&self, location: &str, e: EvalError) -> Error {
        Error::Evaluation {
            file: self.view.file.clone(),
            location: location.to_owned(),
            resource_id: self.resource_id(),
            message: e.0.into_string(),
        }
    }

    fn repeat(
        &self,
        paths: &'a [Expr],
        item: &Item<'a, N>,
        env: &Env<'a, N>,
        depth: usize,
        location: &str,
        out: &mut Vec<Item<'a, N>>,
    ) -> Result<(), Error> {
        if depth > MAX_REPEAT_DEPTH {
            return Err(self.error(
                location,
                EvalError::new("repeat nested too deeply (a cycle?)"),
            ));
        }
        let focus = std::slice::from_ref(item);
        for p in paths {
            for child in eval(p, focus, None, env).map_err(|e| self.error(location, e))? {
                out.push(child.clone());
                self.repeat(paths, &child, env, depth + 1, location, out)?;
            }
        }
        Ok(())
    }

    fn select(
        &self,
        sel: &'a SelectPlan,
        focus: &Item<'a, N>,
        env: &Env<'a, N>,
        errors: &mut Vec<RowError>,
    ) -> Result<Partial, Error> {
        let foci: Coll<'a, N> = match &sel.iteration {
            Iteration::Once => {
                let mut out = Vec::new();
                self.select_one(sel, focus, env, errors, &mut [], &mut out)?;
                return Ok(out);
            }
            Iteration::ForEach(e, at) | Iteration::ForEachOrNull(e, at) => {
                let items = e
                    .eval(std::slice::from_ref(focus), env)
                    .map_err(|err| self.error(at, err))?;
                if items.is_empty() && matches!(sel.iteration, Iteration::ForEachOrNull(..)) {
                    return self.null_row(sel, env, errors);
                }
                items
            }
            Iteration::Repeat(paths, at) => {
                let mut all = Vec::new();
                self.repeat(paths, focus, env, 0, at, &mut all)?;
                Coll::Many(all)
            }
        };
        // Row-invariant columns are evaluated on the first row and copied to the others.
        let mut cache: Vec<Option<Cached>> = Vec::new();
        if foci.len() > 1 && sel.columns.iter().any(|c| c.row_invariant) {
            cache.resize_with(sel.columns.len(), || None);
        }
        let mut out = Vec::with_capacity(foci.len());
        for (item, row_index) in foci.into_iter().zip(0..) {
            let env = Env::new(env.resource, env.constants, row_index);
            self.select_one(sel, &item, &env, errors, &mut cache, &mut out)?;
        }
        Ok(out)
    }

    /// `forEachOrNull` over nothing: one row, its own columns evaluated on an empty focus (so
    /// `%rowIndex` is 0 and constants still show), everything nested NULL.
    fn null_row(
        &self,
        sel: &'a SelectPlan,
        env: &Env<'a, N>,
        errors: &mut Vec<RowError>,
    ) -> Result<Partial, Error> {
        let env = Env::new(env.resource, env.constants, 0);
        let mut row = Vec::with_capacity(sel.width);
        for c in &sel.columns {
            let v = c
                .expr
                .eval(&[], &env)
                .map_err(|e| self.error(&c.location, e))?;
            row.push(self.cell(c, v, errors)?);
        }
        row.resize(sel.width, Cell::Null);
        Ok(vec![row])
    }

    /// The rows of `sel` for one focus element (after its own iteration), appended to `out`.
    /// `cache` is empty, or has one slot per column for the values of row-invariant columns
    /// (see [`Cached`]).
    fn select_one(
        &self,
        sel: &'a SelectPlan,
        focus: &Item<'a, N>,
        env: &Env<'a, N>,
        errors: &mut Vec<RowError>,
        cache: &mut [Option<Cached>],
        out: &mut Partial,
    ) -> Result<(), Error> {
        let mut row = Vec::with_capacity(sel.width);
        for (i, c) in sel.columns.iter().enumerate() {
            if c.null {
                row.push(Cell::Null);
                continue;
            }
            let slot = if c.row_invariant {
                cache.get_mut(i)
            } else {
                None
            };
            if let Some(Some(hit)) = &slot {
                row.push(hit.cell.clone());
                errors.extend(hit.errors.iter().cloned());
                continue;
            }
            let before = errors.len();
            let direct = match &c.expr.fast {
                Some(f) if !c.collection => f.cell(focus, env, c.ty),
                _ => None,
            };
            let cell = match direct {
                Some(cell) => self.converted(c, cell, errors),
                None => {
                    let v = c
                        .expr
                        .eval(std::slice::from_ref(focus), env)
                        .map_err(|e| self.error(&c.location, e))?;
                    self.cell(c, v, errors)?
                }
            };
            if let Some(slot) = slot {
                *slot = Some(Cached {
                    cell: cell.clone(),
                    errors: errors.get(before..).unwrap_or_default().to_vec(),
                });
            }
            row.push(cell);
        }
        // A select of columns alone (a `forEach` of lines): its one row, as it is.
        if sel.selects.is_empty() && sel.union_all.is_empty() {
            out.push(row);
            return Ok(());
        }
        let mut parts = vec![row];
        for s in &sel.selects {
            let sub = self.select(s, focus, env, errors)?;
            if sub.is_empty() {
                return Ok(());
            }
            parts = cross(parts, sub);
        }
        if !sel.union_all.is_empty() {
            let mut u = Vec::new();
            for s in &sel.union_all {
                u.extend(self.select(s, focus, env, errors)?);
            }
            if u.is_empty() {
                return Ok(());
            }
            parts = cross(parts, u);
        }
        out.extend(parts);
        Ok(())
    }

    /// A row error of column `c`.
    fn row_error(&self, c: &ColumnPlan, reason: String) -> RowError {
        RowError {
            resource_id: self.row_error_id(),
            column: c.name.clone(),
            reason,
        }
    }

    /// A value's conversion to column `c`'s cell: the cell, or NULL and the row error saying
    /// why it does not convert.
    fn converted(
        &self,
        c: &ColumnPlan,
        cell: Result<Cell, String>,
        errors: &mut Vec<RowError>,
    ) -> Cell {
        cell.unwrap_or_else(|reason| {
            errors.push(self.row_error(c, reason));
            Cell::Null
        })
    }

    fn cell(
        &self,
        c: &ColumnPlan,
        v: Coll<'a, N>,
        errors: &mut Vec<RowError>,
    ) -> Result<Cell, Error> {
        let mut convert = |item: &Item<'a, N>| self.converted(c, to_cell(item, c.ty), errors);
        if c.collection {
            return Ok(Cell::List(v.as_slice().iter().map(&mut convert).collect()));
        }
        match v.as_slice() {
            [] => Ok(Cell::Null),
            [one] => Ok(convert(one)),
            many if self.view.many_values == ManyValues::OneOrNull => {
                let cells: Vec<Cell> = many.iter().map(&mut convert).collect();
                if cells.windows(2).all(|w| w[0] == w[1]) {
                    return Ok(cells.into_iter().next().unwrap_or(Cell::Null));
                }
                errors.push(self.row_error(
                    c,
                    format!(
                        "{} different values in a column that holds one; the cell is NULL",
                        many.len()
                    ),
                ));
                Ok(Cell::Null)
            }
            many => Err(self.error(
                &c.location,
                EvalError::new(format!(
                    "column `{}` got {} values; mark it `collection: true` or pick one (e.g. first())",
                    c.name,
                    many.len()
                )),
            )),
        }
    }
}

/// Every view of a run, grouped by the resource type it reads, so one parse of a resource feeds
/// all of its views.
#[derive(Debug, Default)]
pub struct ViewSet {
    views: Vec<ViewDefinition>,
    by_type: HashMap<String, Vec<usize>>,
    filters: Filters,
}

impl ViewSet {
    /// Groups `views` by resource type; view `i` writes to output `i` in [`ViewSet::evaluate`].
    ///
    /// # Errors
    /// [`Error::TableMismatch`] when views with the same `name` (one table, e.g. one view per API
    /// version) do not declare the same columns, with the same types, in the same order.
    pub fn new(views: Vec<ViewDefinition>) -> Result<Self, Error> {
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let mut tables: HashMap<String, usize> = HashMap::new();
        for (i, v) in views.iter().enumerate() {
            by_type.entry(v.resource.clone()).or_default().push(i);
            let Some(table) = v.name().map(str::to_lowercase) else {
                continue;
            };
            let Some(&first) = tables.get(&table) else {
                tables.insert(table, i);
                continue;
            };
            let (a, b) = (&views[first].schema.columns, &v.schema.columns);
            let difference = a
                .iter()
                .zip(b)
                .find(|(x, y)| x.name != y.name || x.ty != y.ty || x.collection != y.collection)
                .map(|(x, y)| {
                    format!(
                        "column `{}` ({:?}) vs `{}` ({:?})",
                        x.name, x.ty, y.name, y.ty
                    )
                })
                .or_else(|| {
                    (a.len() != b.len()).then(|| format!("{} columns vs {}", a.len(), b.len()))
                });
            if let Some(message) = difference {
                return Err(Error::TableMismatch {
                    table,
                    file: v.file.clone(),
                    other_file: views[first].file.clone(),
                    message,
                });
            }
        }
        let filters = Filters::new(&views);
        Ok(ViewSet {
            views,
            by_type,
            filters,
        })
    }

    /// The views, in the order given.
    pub fn views(&self) -> &[ViewDefinition] {
        &self.views
    }

    /// A fresh output per view, for [`ViewSet::evaluate`].
    pub fn outputs(&self) -> Vec<Rows> {
        vec![Rows::default(); self.views.len()]
    }

    /// Indexes of the views that read `resource_type`.
    pub fn for_type(&self, resource_type: &str) -> &[usize] {
        self.by_type.get(resource_type).map_or(&[], Vec::as_slice)
    }

    /// Evaluates every view of the resource's type on it, appending to `outputs[view index]`.
    /// Returns how many views ran.
    ///
    /// # Errors
    /// The first [`Error::Evaluation`], after every view has run: a view that fails adds nothing
    /// for this resource, the others add their rows as usual.
    pub fn evaluate<'a, N: Node<'a>>(
        &'a self,
        resource: N,
        outputs: &mut [Rows],
    ) -> Result<usize, Error> {
        let Some(rt) = resource.get("resourceType").and_then(|r| r.as_str()) else {
            return Ok(0);
        };
        let idx = self.for_type(rt);
        let mut first_error = None;
        let mut memo = FilterMemo::default();
        for &i in idx {
            if let (Some(view), Some(out)) = (self.views.get(i), outputs.get_mut(i))
                && let Err(e) = view.evaluate_filtered(
                    resource,
                    &self.filters.filter(i, view, resource, &mut memo),
                    out,
                )
            {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(idx.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimline_ndjson::LineParser;

    fn load(view: &str) -> Result<ViewDefinition, Error> {
        ViewDefinition::from_json(view, "v.json")
    }

    fn load_err(view: &str) -> String {
        load(view).expect_err("view is invalid").to_string()
    }

    /// Views give the same rows from a resource parsed with only the root members
    /// `root_needs` names as from one parsed whole: a type name leading a path, the twin of a
    /// choice-type value, a `repeat` that comes back to the root, counted arrays next to members
    /// read whole, `%resource` inside a `forEach`, `resolve()`.
    #[test]
    fn root_needs_name_every_member_a_view_reads() {
        let cases: [(&str, &str); 7] = [
            (
                r#"{"resource":"Patient","select":[{"column":[{"name":"f","path":"Patient.name.family"}]}]}"#,
                r#"{"resourceType":"Patient","id":"p","name":[{"family":"X"}],"gender":"f"}"#,
            ),
            (
                r#"{"resource":"Patient","select":[{"column":[{"name":"x","path":"deceased.extension('http://x').exists()","type":"boolean"}]}]}"#,
                r#"{"resourceType":"Patient","id":"p","deceasedBoolean":true,"_deceasedBoolean":{"extension":[{"url":"http://x"}]},"gender":"f"}"#,
            ),
            (
                r#"{"resource":"ExplanationOfBenefit","select":[{"forEach":"item","select":[{"repeat":["iif(productOrService.exists(), %resource, {})","careTeam"],"column":[{"name":"s","path":"sequence","type":"integer"}]}]}]}"#,
                r#"{"resourceType":"ExplanationOfBenefit","id":"e","item":[{"sequence":1,"productOrService":{"text":"x"}}],"careTeam":[{"sequence":7},{"sequence":8}],"status":"active"}"#,
            ),
            (
                r#"{"resource":"Observation","select":[{"column":[{"name":"v","path":"value.value","type":"decimal"},{"name":"n","path":"valueQuantity.count()","type":"integer"}]}]}"#,
                r#"{"resourceType":"Observation","id":"o","valueQuantity":[{"value":5.50}],"status":"final"}"#,
            ),
            (
                r#"{"resource":"ExplanationOfBenefit","select":[{"column":[{"name":"n","path":"item.count()","type":"integer"},{"name":"c","path":"careTeam.exists()","type":"boolean"}]},{"forEach":"diagnosis","column":[{"name":"id","path":"%resource.id"},{"name":"seq","path":"sequence","type":"integer"}]}]}"#,
                r#"{"resourceType":"ExplanationOfBenefit","id":"e","item":[{"sequence":1},{"sequence":2}],"careTeam":[{"sequence":1}],"diagnosis":[{"sequence":3}],"supportingInfo":[{"sequence":9}]}"#,
            ),
            (
                r#"{"resource":"ExplanationOfBenefit","select":[{"column":[{"name":"npi","path":"careTeam.provider.resolve().identifier.value"}]}]}"#,
                r##"{"resourceType":"ExplanationOfBenefit","id":"e","careTeam":[{"provider":{"reference":"#p1"}}],"contained":[{"resourceType":"Practitioner","id":"p1","identifier":[{"value":"123"}]}],"item":[{"sequence":1}]}"##,
            ),
            (
                r#"{"resource":"ExplanationOfBenefit","where":[{"path":"ExplanationOfBenefit.status = 'active'"}],"select":[{"column":[{"name":"id","path":"getResourceKey()"}]}]}"#,
                r#"{"resourceType":"ExplanationOfBenefit","id":"e","status":"active","item":[{"sequence":1}]}"#,
            ),
        ];
        for (view, line) in cases {
            let v = load(view).expect("view");
            let needs = v.root_needs().expect("the view names what it reads");
            let mut pruning = claimline_ndjson::Pruning::new();
            pruning.set(v.resource(), needs);
            let mut parser = LineParser::new();
            let mut whole = Rows::default();
            parser
                .parse(line.as_bytes(), |d| v.evaluate(d.root(), &mut whole))
                .expect("parses")
                .expect("evaluates");
            let mut part = Rows::default();
            let nodes = parser
                .parse_pruned(line.as_bytes(), &pruning, false, |d| {
                    v.evaluate(d.root(), &mut part).map(|()| d.node_count())
                })
                .expect("parses")
                .expect("evaluates");
            let all_nodes = parser
                .parse(line.as_bytes(), |d| d.node_count())
                .expect("parses");
            assert_eq!(part, whole, "{view}");
            assert!(
                whole.rows.iter().flatten().any(|c| *c != Cell::Null),
                "{view}: the case reads something"
            );
            assert!(nodes < all_nodes, "{view}: something was left out");
        }
    }

    /// Rows through both value implementations (they must agree), as JSON text per row.
    fn run_rows(view: &str, resource: &str) -> (Vec<String>, Vec<RowError>) {
        let v = load(view).expect("view is valid");
        let json: Value = serde_json::from_str(resource).expect("resource JSON");
        let mut a = Rows::default();
        v.evaluate(&json, &mut a).expect("evaluates on serde_json");
        let mut b = Rows::default();
        LineParser::new()
            .parse(resource.as_bytes(), |doc| v.evaluate(doc.root(), &mut b))
            .expect("tape parses")
            .expect("evaluates on the tape");
        assert_eq!(a, b, "serde_json and tape disagree");
        let text = a
            .rows
            .iter()
            .map(|r| Value::Array(r.iter().map(Cell::to_json).collect()).to_string())
            .collect();
        (text, a.errors)
    }

    #[test]
    fn errors_name_the_json_location() {
        let e = load_err(
            r#"{"resource":"Patient","select":[{"column":[{"name":"a","path":"id"}]},
               {"column":[{"name":"b","path":"id"},{"name":"c","path":"id","colour":"red"}]}]}"#,
        );
        assert!(
            e.starts_with("v.json: select[1].column[1].colour: unknown key `colour`"),
            "{e}"
        );
        let e = load_err(
            r#"{"resource":"Patient","select":[{"column":[{"name":"a","path":"name.where(use = )"}]}]}"#,
        );
        assert_eq!(
            e,
            "v.json: select[0].column[0].path: FHIRPath `name.where(use = )` at character 18: \
             expected an expression, found `)`"
        );
        let e = load_err(r#"{"resource":"Patient","select":[{"forEach":1,"column":[]}]}"#);
        assert_eq!(
            e,
            "v.json: select[0].forEach: expected a string, found a number"
        );
        assert!(load_err(r#"{"select":[]}"#).contains("resource: missing"));
        assert!(load_err("{").starts_with("v.json: not valid JSON"));
    }

    #[test]
    fn rejects_bad_columns_and_constants() {
        let dup = load_err(
            r#"{"resource":"Patient","select":[{"column":[{"name":"a","path":"id"}]},{"column":[{"name":"a","path":"id"}]}]}"#,
        );
        assert!(dup.contains("duplicate column name `a`"), "{dup}");
        let bad_name =
            load_err(r#"{"resource":"Patient","select":[{"column":[{"name":"1a","path":"id"}]}]}"#);
        assert!(bad_name.contains("select[0].column[0].name"), "{bad_name}");
        let union = load_err(
            r#"{"resource":"Patient","select":[{"unionAll":[{"column":[{"name":"a","path":"id"}]},{"column":[{"name":"b","path":"id"}]}]}]}"#,
        );
        assert!(
            union.contains("select[0].unionAll[1]: unionAll branches"),
            "{union}"
        );
        let constant = load_err(
            r#"{"resource":"Patient","constant":[{"name":"x"}],"select":[{"column":[{"name":"a","path":"%x"}]}]}"#,
        );
        assert!(
            constant.contains("constant[0]: constant `x` needs exactly one value[x]"),
            "{constant}"
        );
        let undefined =
            load_err(r#"{"resource":"Patient","select":[{"column":[{"name":"a","path":"%y"}]}]}"#);
        assert!(
            undefined.contains("at character 1: expected a defined constant"),
            "{undefined}"
        );
        let two = load_err(
            r#"{"resource":"Patient","select":[{"forEach":"a","repeat":["b"],"column":[{"name":"a","path":"id"}]}]}"#,
        );
        assert!(two.contains("only one of forEach"), "{two}");
    }

    #[test]
    fn schema_carries_types_tags_and_order() {
        let v = load(
            r#"{"resourceType":"ViewDefinition","name":"t","status":"active","resource":"Claim","select":[
                {"column":[{"name":"amt","path":"total.value","type":"decimal","description":"Total",
                            "tag":[{"name":"ansi/type","value":"DECIMAL(13,2)"}]}]},
                {"forEach":"item","column":[{"name":"seq","path":"sequence","type":"positiveInt"},
                                           {"name":"codes","path":"code","type":"code","collection":true}]}]}"#,
        )
        .expect("valid");
        let s = v.schema();
        let names: Vec<_> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["amt", "seq", "codes"]);
        assert_eq!(
            s.columns[0].ty,
            ColumnType::Decimal {
                precision: 13,
                scale: 2
            }
        );
        assert_eq!(s.columns[0].description.as_deref(), Some("Total"));
        assert_eq!(s.columns[1].ty, ColumnType::Integer);
        assert!(s.columns[2].collection);
        assert_eq!((v.name(), v.resource()), (Some("t"), "Claim"));
    }

    #[test]
    fn values_that_do_not_fit_are_null_and_counted() {
        let view = r#"{"resource":"ExplanationOfBenefit","select":[{"column":[
            {"name":"id","path":"id","type":"id"},
            {"name":"created","path":"created","type":"date"},
            {"name":"updated","path":"meta.lastUpdated","type":"instant"},
            {"name":"paid","path":"payment.amount.value","type":"decimal"}]}]}"#;
        let eob = r#"{"resourceType":"ExplanationOfBenefit","id":"e1","created":"IGNORED_FIELD",
            "meta":{"lastUpdated":"2024-01-02T03:04:05.123-05:00"},"payment":{"amount":{"value":12.345}}}"#;
        let (rows, errors) = run_rows(view, eob);
        assert_eq!(rows, [r#"["e1",null,"2024-01-02T08:04:05.123000Z",null]"#]);
        let cols: Vec<_> = errors
            .iter()
            .map(|e| (e.resource_id.as_deref(), e.column.as_str()))
            .collect();
        assert_eq!(cols, [(Some("e1"), "created"), (Some("e1"), "paid")]);
        assert_eq!(errors[0].to_string(), "column created: value is not a date");
    }

    #[test]
    fn decimals_keep_their_source_digits() {
        let view = r#"{"resource":"Observation","select":[{"column":[
            {"name":"v","path":"value.ofType(Quantity).value","type":"decimal","tag":[{"name":"ansi/type","value":"DECIMAL(20,4)"}]},
            {"name":"t","path":"value.ofType(Quantity).value.toString()","type":"string"}]}]}"#;
        let (rows, errors) = run_rows(
            view,
            r#"{"resourceType":"Observation","valueQuantity":{"value":84999.37}}"#,
        );
        assert_eq!(rows, [r#"[84999.3700,"84999.37"]"#]);
        assert!(errors.is_empty());
        let (rows, _) = run_rows(
            view,
            r#"{"resourceType":"Observation","valueQuantity":{"value":1.0}}"#,
        );
        assert_eq!(rows, [r#"[1.0000,"1.0"]"#]);
    }

    #[test]
    fn many_values_in_a_single_column_is_an_error() {
        let v = load(
            r#"{"resource":"Patient","select":[{"column":[{"name":"f","path":"name.family"}]}]}"#,
        )
        .expect("valid");
        let json: Value = serde_json::from_str(
            r#"{"resourceType":"Patient","id":"p9","name":[{"family":"a"},{"family":"b"}]}"#,
        )
        .expect("json");
        let e = v
            .evaluate(&json, &mut Rows::default())
            .expect_err("two values");
        assert!(
            matches!(&e, Error::Evaluation { location, resource_id, .. } if location == "select[0].column[0].path" && resource_id == "p9"),
            "{e}"
        );
    }

    /// A `{}` column is NULL on every row without being evaluated; a `{}` column that is a
    /// collection is an empty list, as the general path makes them: in a plain select, a
    /// `forEach` and a `forEachOrNull` over nothing (which evaluates its columns on no focus).
    #[test]
    fn empty_columns_are_null_and_empty_collections_are_empty_lists() {
        let view = r#"{"resource":"ExplanationOfBenefit","select":[
            {"column":[{"name":"id","path":"id","type":"string"},
                       {"name":"none","path":"{}","type":"string"}]},
            {"forEach":"item","column":[
                {"name":"seq","path":"sequence","type":"integer"},
                {"name":"blank","path":"{}","type":"date"},
                {"name":"list","path":"{}","type":"string","collection":true}]},
            {"forEachOrNull":"careTeam","column":[
                {"name":"care","path":"{}","type":"string"}]}]}"#;
        let eob = r#"{"resourceType":"ExplanationOfBenefit","id":"e1",
            "item":[{"sequence":1},{"sequence":2}]}"#;
        let (rows, errors) = run_rows(view, eob);
        assert_eq!(
            rows,
            [
                r#"["e1",null,1,null,[],null]"#,
                r#"["e1",null,2,null,[],null]"#
            ]
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn row_invariant_columns_repeat_values_and_errors_on_every_row() {
        let view = r#"{"resource":"ExplanationOfBenefit","select":[
            {"forEach":"item","column":[
                {"name":"seq","path":"sequence","type":"integer"},
                {"name":"created","path":"%resource.created","type":"date"},
                {"name":"st","path":"iif(%resource.status = 'active', 'A', 'X')","type":"string"},
                {"name":"dx","path":"%resource.diagnosis.where(sequence in %resource.item[%rowIndex].diagnosisSequence).code","type":"string"},
                {"name":"m1","path":"(modifier.code)[1]","type":"string"}]}]}"#;
        let eob = r#"{"resourceType":"ExplanationOfBenefit","id":"e1","status":"active",
            "created":"not-a-date",
            "diagnosis":[{"sequence":1,"code":"A"},{"sequence":2,"code":"B"}],
            "item":[{"sequence":1,"diagnosisSequence":[2],"modifier":[{"code":"x"},{"code":"y"}]},
                    {"sequence":2,"diagnosisSequence":[1]},
                    {"sequence":3}]}"#;
        let (rows, errors) = run_rows(view, eob);
        assert_eq!(
            rows,
            [
                r#"[1,null,"A","B","y"]"#,
                r#"[2,null,"A","A",null]"#,
                r#"[3,null,"A",null,null]"#
            ]
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().all(|e| e.column == "created"));
        for (path, invariant) in [
            ("%resource.created", true),
            ("iif(%resource.status = 'active', 'A', 'X')", true),
            ("%resource.careTeam.where(sequence = 1).provider", true),
            ("%resource.item[%rowIndex].sequence", false),
            ("%resource.careTeam.where(sequence = %rowIndex)", false),
            ("sequence", false),
            ("iif(sequence = 1, 'a', 'b')", false),
            (
                "%resource.diagnosis.where(sequence = 1).code.replace('.', '')",
                true,
            ),
            ("getResourceKey()", false),
        ] {
            let e = compile(path, &[]).expect("compiles");
            assert_eq!(row_invariant(&e), invariant, "{path}");
        }
    }

    #[test]
    fn items_reach_their_claim_through_resource() {
        let view = r#"{"resource":"ExplanationOfBenefit","select":[
            {"column":[{"name":"id","path":"id","type":"id"}]},
            {"forEach":"item","column":[
                {"name":"seq","path":"sequence","type":"integer"},
                {"name":"row","path":"%rowIndex","type":"integer"},
                {"name":"npi","path":"%resource.careTeam.where(sequence = %rowIndex + 1).provider.identifier.value","type":"string"}]}]}"#;
        let eob = r#"{"resourceType":"ExplanationOfBenefit","id":"e1",
            "careTeam":[{"sequence":1,"provider":{"identifier":{"value":"N1"}}},{"sequence":2,"provider":{"identifier":{"value":"N2"}}}],
            "item":[{"sequence":1},{"sequence":2}]}"#;
        let (rows, _) = run_rows(view, eob);
        assert_eq!(rows, [r#"["e1",1,0,"N1"]"#, r#"["e1",2,1,"N2"]"#]);
    }

    #[test]
    fn one_parse_feeds_every_view_of_its_type() {
        let a = load(r#"{"name":"a","resource":"Patient","select":[{"column":[{"name":"id","path":"id"}]}]}"#)
            .expect("a");
        let b = load(r#"{"name":"b","resource":"Coverage","select":[{"column":[{"name":"id","path":"id"}]}]}"#)
            .expect("b");
        let c = load(
            r#"{"name":"c","resource":"Patient","select":[{"forEach":"name","column":[{"name":"f","path":"family"}]}]}"#,
        )
        .expect("c");
        let set = ViewSet::new(vec![a, b, c]).expect("distinct tables");
        let mut outs = set.outputs();
        let ran = LineParser::new()
            .parse(
                br#"{"resourceType":"Patient","id":"p1","name":[{"family":"X"},{"family":"Y"}]}"#,
                |doc| set.evaluate(doc.root(), &mut outs),
            )
            .expect("parses")
            .expect("evaluates");
        assert_eq!(ran, 2);
        assert_eq!(
            outs.iter().map(|o| o.rows.len()).collect::<Vec<_>>(),
            [1, 0, 2]
        );
    }

    /// Whether each of `views` keeps `doc`, asked through one memo as a resource's views are,
    /// and how many answers the memo then holds (one per group asked).
    fn kept_by_one_memo(
        filters: &Filters,
        views: &[ViewDefinition],
        doc: &Value,
    ) -> (Vec<bool>, usize) {
        let mut memo = FilterMemo::default();
        let kept = views
            .iter()
            .enumerate()
            .map(|(i, v)| filters.filter(i, v, doc, &mut memo).kept())
            .collect();
        (kept, memo.0.iter().filter(|f| f.is_some()).count())
    }

    #[test]
    fn views_with_the_same_where_share_its_answer() {
        let view = |name: &str, resource: &str, constant: &str, wheres: &str| {
            ViewDefinition::from_json(
                &format!(
                    r#"{{"name":"{name}","resource":"{resource}",
                        "constant":[{{"name":"fam","valueString":"{constant}"}}],
                        "where":[{wheres}],
                        "select":[{{"column":[{{"name":"id","path":"id"}}]}}]}}"#
                ),
                &format!("{name}.json"),
            )
            .expect("valid view")
        };
        let kept = r#"{"path":"name.family = %fam"},{"path":"active"}"#;
        let views = vec![
            view("a", "Patient", "X", kept),
            // The same paths written otherwise: the same expressions.
            view(
                "b",
                "Patient",
                "X",
                r#"{"path":"name.family=%fam"},{"path":"active"}"#,
            ),
            // The same text with another constant keeps other resources.
            view("c", "Patient", "Y", kept),
            // Another resource type, or another order of the paths.
            view("d", "Person", "X", kept),
            view(
                "e",
                "Patient",
                "X",
                r#"{"path":"active"},{"path":"name.family = %fam"}"#,
            ),
            view("f", "Patient", "X", kept),
        ];
        let filters = Filters::new(&views);
        assert_eq!(filters.group, [0, 0, 2, 3, 4, 0]);
        // One answer per group: four evaluations for six views.
        let doc: Value = serde_json::from_str(
            r#"{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"X"}]}"#,
        )
        .expect("JSON");
        assert_eq!(
            kept_by_one_memo(&filters, &views, &doc),
            (vec![true, true, false, false, true, true], 4)
        );
        let set = ViewSet::new(views).expect("distinct tables");
        let mut outs = set.outputs();
        LineParser::new()
            .parse(
                br#"{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"X"}]}"#,
                |doc| set.evaluate(doc.root(), &mut outs),
            )
            .expect("parses")
            .expect("evaluates");
        assert_eq!(
            outs.iter().map(|o| o.rows.len()).collect::<Vec<_>>(),
            [1, 1, 0, 0, 1, 1]
        );
    }

    #[test]
    fn a_shared_where_error_is_each_views_own() {
        let view = |file: &str| {
            ViewDefinition::from_json(
                r#"{"name":"t","resource":"Patient",
                    "where":[{"path":"active"},{"path":"name.family"}],
                    "select":[{"column":[{"name":"id","path":"id"}]}]}"#,
                file,
            )
            .expect("valid view")
        };
        let (a, b) = (view("a.json"), view("b.json"));
        let filters = Filters::new([&a, &b]);
        let mut memo = FilterMemo::default();
        let doc: Value = serde_json::from_str(
            r#"{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"X"}]}"#,
        )
        .expect("JSON");
        for (i, v) in [&a, &b].into_iter().enumerate() {
            let filtered = filters.filter(i, v, &doc, &mut memo);
            assert!(!filtered.kept());
            let mut rows = Rows::default();
            let err = v
                .evaluate_filtered(&doc, &filtered, &mut rows)
                .expect_err("a where that is not boolean");
            assert_eq!(
                err.to_string(),
                format!(
                    "{}: where[1].path: where path must return a boolean",
                    v.file()
                )
            );
            assert!(rows.rows.is_empty() && rows.errors.is_empty());
        }
        // One answer for both, held by the first view's group.
        assert_eq!(memo.0.iter().filter(|f| f.is_some()).count(), 1);
    }

    #[test]
    fn decimals_written_differently_keep_their_own_where() {
        // `1.0` and `1.00` are equal values of different scale: their text differs.
        let view = |name: &str, d: &str| {
            ViewDefinition::from_json(
                &format!(
                    r#"{{"name":"{name}","resource":"Patient",
                        "constant":[{{"name":"d","valueDecimal":{d}}}],
                        "where":[{{"path":"%d.toString() = '1.0'"}}],
                        "select":[{{"column":[{{"name":"id","path":"id"}}]}}]}}"#
                ),
                "v.json",
            )
            .expect("valid view")
        };
        let views = [view("a", "1.0"), view("b", "1.00"), view("c", "1.0")];
        assert!(!views[0].same_filter(&views[1]));
        assert!(views[0].same_filter(&views[2]));
        let filters = Filters::new(&views);
        assert_eq!(filters.group, [0, 1, 0]);
        let doc: Value =
            serde_json::from_str(r#"{"resourceType":"Patient","id":"p1"}"#).expect("JSON");
        assert_eq!(
            kept_by_one_memo(&filters, &views, &doc),
            (vec![true, false, true], 2)
        );
    }

    #[test]
    fn views_of_one_table_must_agree_on_columns() {
        let v = |file: &str, cols: &str| {
            ViewDefinition::from_json(
                &format!(r#"{{"name":"CCLF1","resource":"ExplanationOfBenefit","select":[{{"column":[{cols}]}}]}}"#),
                file,
            )
            .expect("valid")
        };
        let a = r#"{"name":"id","path":"id"},{"name":"amt","path":"total.value","type":"decimal"}"#;
        let b = r#"{"name":"id","path":"id"},{"name":"amt","path":"total.value","type":"string"}"#;
        assert!(ViewSet::new(vec![v("v1.json", a), v("v2.json", a)]).is_ok());
        let e = ViewSet::new(vec![v("v1.json", a), v("v2.json", b)]).expect_err("types differ");
        assert!(
            e.to_string()
                .starts_with("v2.json: view `cclf1` declares different columns than v1.json"),
            "{e}"
        );
    }

    /// The tape cursor and serde_json agree on every real R4 EOB sample, for a view that touches
    /// identifiers, extensions, choice types, decimals, dates and a forEach.
    #[test]
    fn tape_and_serde_agree_on_real_r4_samples() {
        let view = load(
            r#"{"resource":"ExplanationOfBenefit","select":[
            {"column":[
              {"name":"id","path":"getResourceKey()","type":"id"},
              {"name":"grp","path":"identifier.where(system.endsWith('claim-group')).value.first()","type":"string"},
              {"name":"from","path":"billablePeriod.start","type":"date"},
              {"name":"created","path":"created","type":"date"},
              {"name":"updated","path":"meta.lastUpdated","type":"instant"},
              {"name":"paid","path":"payment.amount.value","type":"decimal"},
              {"name":"exts","path":"extension.url.count()","type":"integer"},
              {"name":"codes","path":"type.coding.code","type":"code","collection":true}]},
            {"forEachOrNull":"item","column":[
              {"name":"seq","path":"sequence","type":"integer"},
              {"name":"qty","path":"quantity.value","type":"decimal","tag":[{"name":"ansi/type","value":"DECIMAL(18,4)"}]},
              {"name":"svc","path":"serviced.ofType(date) | serviced.ofType(Period).start","type":"date"}]}]}"#,
        )
        .expect("valid");
        let files = [
            include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-carrier.ndjson"),
            include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-dme.ndjson"),
            include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-hha.ndjson"),
            include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-hospice.ndjson"),
            include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-inpatient.ndjson"),
            include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-outpatient.ndjson"),
            include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-pde.ndjson"),
            include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-snf.ndjson"),
        ];
        let (mut a, mut b) = (Rows::default(), Rows::default());
        let mut parser = LineParser::new();
        for line in files.iter().flat_map(|f| f.lines()) {
            let json: Value = serde_json::from_str(line).expect("sample JSON");
            view.evaluate(&json, &mut a).expect("serde_json evaluates");
            parser
                .parse(line.as_bytes(), |doc| view.evaluate(doc.root(), &mut b))
                .expect("tape parses")
                .expect("tape evaluates");
        }
        assert_eq!(a, b);
        assert_eq!(a.rows.len(), 15, "7 + 1 × 8 item rows");
        // Every sample has the `IGNORED_FIELD` placeholders in created and meta.lastUpdated; the
        // header columns are evaluated once per resource (9), then repeated on its item rows.
        let placeholder_errors = a
            .errors
            .iter()
            .filter(|e| e.column == "created" || e.column == "updated")
            .count();
        assert_eq!(placeholder_errors, 2 * 9);
    }
}
