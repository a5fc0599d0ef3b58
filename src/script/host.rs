//! The Rhai strategy host: one compiled script version, its engine, and its memory.
//!
//! Loading compiles the file, checks that `predict(ctx)` exists (and that `size`, if
//! present, takes `(ctx, decision)`), then runs the top level exactly once by turning the
//! script into a module whose functions keep their imports and constants. Each call is
//! bounded by the sandbox and a wall-clock deadline; whatever goes wrong comes back as a
//! [`CallFailure`] with a kind, the file and the position, for the session to journal.

use super::Strategy;
use super::ctx::{self, Ctx};
use super::decision::{parse_decision, parse_stake};
use super::params::ParamReads;
use super::sandbox::{self, DEADLINE_TOKEN, Deadline, LogBuffer};
use super::text::printable;
use crate::config::SandboxConfig;
use crate::domain::{Decision, StakeAsk};
use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Module, Scope};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// A script that cannot be used at all (as opposed to one call failing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The file could not be read.
    #[error("{path}: cannot read strategy: {source}")]
    Read {
        /// The script.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Syntax error, with the position.
    #[error("{path}: {message}")]
    Compile {
        /// The script.
        path: PathBuf,
        /// Rhai's message with line and column.
        message: String,
    },
    /// A required function is missing or has the wrong arity.
    #[error("{path}: {message}")]
    Contract {
        /// The script.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// The top level failed when run once at load time.
    #[error("{path}: top-level code failed: {message}")]
    TopLevel {
        /// The script.
        path: PathBuf,
        /// What failed, with position.
        message: String,
    },
}

/// What kind of failure a call ended in; the journal records it as the skip reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The script threw, called something undefined, or hit a type error.
    Runtime,
    /// The per-call wall-clock deadline passed.
    Timeout,
    /// The operation budget ran out (e.g. an endless loop).
    OperationBudget,
    /// Call depth exceeded (e.g. endless recursion).
    CallDepth,
    /// A string, array or map grew past its limit.
    DataTooLarge,
    /// The call returned something that is not a valid answer.
    BadReturn,
    /// The script's memory (`this`) broke its shape or size limit.
    Memory,
}

impl FailureKind {
    /// Stable code for journals.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::Runtime => "script_runtime_error",
            FailureKind::Timeout => "script_timeout",
            FailureKind::OperationBudget => "script_operation_budget",
            FailureKind::CallDepth => "script_call_depth",
            FailureKind::DataTooLarge => "script_data_too_large",
            FailureKind::BadReturn => "script_bad_return",
            FailureKind::Memory => "script_memory",
        }
    }
}

/// One failed call: it costs that window (a SKIP), never the run.
#[derive(Clone, Debug, PartialEq)]
pub struct CallFailure {
    /// What went wrong.
    pub kind: FailureKind,
    /// Details with the file and position, for people.
    pub message: String,
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

/// A loaded strategy script. Owned by the session thread (Rhai values are not `Send`).
pub struct ScriptStrategy {
    path: PathBuf,
    name: String,
    hash: String,
    modules: Vec<PathBuf>,
    param_reads: ParamReads,
    engine: Engine,
    has_size: bool,
    logs: Rc<RefCell<LogBuffer>>,
    deadline: Deadline,
    timeout: Duration,
    memory: Dynamic,
    max_memory_bytes: usize,
    scope: Scope<'static>,
    empty: AST,
}

impl fmt::Debug for ScriptStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptStrategy")
            .field("path", &self.path)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// The folder a script lives in: the root its imports resolve in, and what hot reload
/// watches.
pub fn script_folder(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Short content hash of a script's text.
pub fn content_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

impl ScriptStrategy {
    /// Load the script at `path`; `import` may reach only files in its folder.
    pub fn load(path: &Path, limits: &SandboxConfig) -> Result<Self, ScriptError> {
        let source = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_source(path, &source, limits)
    }

    /// Load from text already read; `path` names it in messages and roots its imports.
    pub fn from_source(
        path: &Path,
        source: &str,
        limits: &SandboxConfig,
    ) -> Result<Self, ScriptError> {
        let root = script_folder(path);
        let logs = Rc::new(RefCell::new(LogBuffer {
            cap: limits.max_log_lines_per_call,
            ..LogBuffer::default()
        }));
        let deadline = Deadline::default();
        let imports = Rc::new(RefCell::new(Vec::new()));
        let mut engine = sandbox::new_engine(
            limits,
            root,
            logs.clone(),
            deadline.clone(),
            imports.clone(),
        );
        ctx::register(&mut engine);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "script".into());

        let mut ast = engine.compile(source).map_err(|e| ScriptError::Compile {
            path: path.to_path_buf(),
            message: format!(
                "syntax error at {}: {}",
                describe_pos(e.position()),
                printable(&e.err_type().to_string())
            ),
        })?;
        ast.set_source(path.display().to_string());

        let arity = |name: &str| -> Vec<usize> {
            ast.iter_functions()
                .filter(|f| f.name == name)
                .map(|f| f.params.len())
                .collect()
        };
        if !arity("predict").contains(&1) {
            return Err(ScriptError::Contract {
                path: path.to_path_buf(),
                message: "no `fn predict(ctx)`: every strategy must define it and return up(..), down(..) or skip(..)".into(),
            });
        }
        let sizes = arity("size");
        if !sizes.is_empty() && !sizes.contains(&2) {
            return Err(ScriptError::Contract {
                path: path.to_path_buf(),
                message: format!(
                    "`size` must take two parameters `(ctx, decision)`, found one taking {}",
                    sizes[0]
                ),
            });
        }
        let has_size = sizes.contains(&2);

        // Running the top level as a module gives its functions a captured environment
        // (its imports; top-level constants are reached as `global::NAME`), so it runs once
        // here and never per call.
        deadline.arm(Duration::from_millis(limits.call_timeout_ms));
        let module = Module::eval_ast_as_new(Scope::new(), &ast, &engine);
        deadline.disarm();
        let module = module.map_err(|e| ScriptError::TopLevel {
            path: path.to_path_buf(),
            message: classify(&e, path).message,
        })?;
        engine.register_global_module(module.into());

        // The version is the script and every module it imported, so editing a shared module
        // is a new version too.
        let mut modules = imports.borrow().clone();
        modules.sort();
        let mut versioned = source.to_string();
        let mut param_reads = ParamReads::default();
        param_reads.scan(source);
        for m in &modules {
            let text = std::fs::read_to_string(m).unwrap_or_default();
            param_reads.scan(&text);
            versioned.push('\0');
            versioned.push_str(&m.display().to_string());
            versioned.push('\0');
            versioned.push_str(&text);
        }

        let host = ScriptStrategy {
            path: path.to_path_buf(),
            name,
            hash: content_hash(&versioned),
            modules,
            param_reads,
            engine,
            has_size,
            logs,
            deadline,
            timeout: Duration::from_millis(limits.call_timeout_ms),
            memory: Map::new().into(),
            max_memory_bytes: limits.max_memory_bytes,
            scope: Scope::new(),
            empty: AST::empty(),
        };
        host.flush_logs();
        Ok(host)
    }

    /// The script's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rhai operations used by the last call, to compare with `sandbox.max_operations`.
    pub fn last_call_operations(&self) -> u64 {
        self.deadline.operations()
    }

    /// Module files the script imported (canonical paths), part of its version.
    pub fn modules(&self) -> &[PathBuf] {
        &self.modules
    }

    /// The parameter names (and literal defaults) the script and its modules read.
    pub fn param_reads(&self) -> &ParamReads {
        &self.param_reads
    }

    /// Warnings for the parameters a run gives this script (`[params.<stem>]` of `config`,
    /// then `overrides`): names it never reads and values of another type than its default.
    pub fn check_params(
        &self,
        config_params: Option<&toml::Table>,
        overrides: &toml::Table,
    ) -> Vec<String> {
        let given = super::params::given(&self.name, config_params, overrides);
        self.param_reads.check(
            &self.path.display().to_string(),
            given.iter().map(|(o, k, v)| (o.as_str(), *k, *v)),
        )
    }

    /// Whether the script defines `size(ctx, decision)`.
    pub fn has_size(&self) -> bool {
        self.has_size
    }

    /// Call `func` under the deadline with `this` bound to the script's memory; a failed
    /// call leaves the memory as it was before it.
    fn call(&mut self, func: &str, args: impl rhai::FuncArgs) -> Result<Dynamic, CallFailure> {
        let before = self.memory.clone();
        self.deadline.arm(self.timeout);
        let options = CallFnOptions::new()
            .eval_ast(false)
            .rewind_scope(true)
            .in_all_namespaces(true)
            .bind_this_ptr(&mut self.memory);
        let result: Result<Dynamic, _> =
            self.engine
                .call_fn_with_options(options, &mut self.scope, &self.empty, func, args);
        self.deadline.disarm();
        self.flush_logs();
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                self.memory = before;
                return Err(classify(&e, &self.path));
            }
        };
        if let Err(why) = self.check_memory() {
            self.memory = before;
            return Err(CallFailure {
                kind: FailureKind::Memory,
                message: format!(
                    "{}: {why}; the previous memory was kept",
                    self.path.display()
                ),
            });
        }
        Ok(value)
    }

    fn check_memory(&self) -> Result<(), String> {
        if !self.memory.is_map() {
            return Err(format!(
                "`this` must stay a map, the script made it {}",
                self.memory.type_name()
            ));
        }
        data_only(&self.engine, &self.memory, "this")?;
        let size = serde_json::to_string(&self.memory)
            .map(|s| s.len())
            .map_err(|e| e.to_string())?;
        if size > self.max_memory_bytes {
            return Err(format!(
                "memory is {size} bytes as JSON, over the limit of {} (sandbox.max_memory_bytes)",
                self.max_memory_bytes
            ));
        }
        Ok(())
    }

    fn flush_logs(&self) {
        let mut buf = self.logs.borrow_mut();
        for line in buf.lines.drain(..) {
            tracing::info!(target: "script", script = %self.name, "{line}");
        }
        if buf.dropped > 0 {
            tracing::warn!(target: "script", script = %self.name, "{} log lines dropped (sandbox.max_log_lines_per_call)", buf.dropped);
            buf.dropped = 0;
        }
    }
}

impl Strategy for ScriptStrategy {
    fn name(&self) -> &str {
        &self.name
    }

    fn content_hash(&self) -> &str {
        &self.hash
    }

    fn predict(&mut self, ctx: &Ctx) -> Result<Decision, CallFailure> {
        let value = self.call("predict", (ctx.clone(),))?;
        parse_decision(value).map_err(|message| CallFailure {
            kind: FailureKind::BadReturn,
            message: format!("{}: {message}", self.path.display()),
        })
    }

    fn size(&mut self, ctx: &Ctx, decision: &Decision) -> Result<Option<StakeAsk>, CallFailure> {
        if !self.has_size {
            return Ok(None);
        }
        let mut d = Map::new();
        d.insert(
            "side".into(),
            Dynamic::from(decision.side.map_or("skip", |s| s.as_str()).to_string()),
        );
        d.insert(
            "confidence".into(),
            Dynamic::from_float(decision.confidence),
        );
        d.insert("reason".into(), Dynamic::from(decision.reason.clone()));
        if let Some(p) = decision.prob {
            d.insert("prob".into(), Dynamic::from_float(p));
        }
        let value = self.call("size", (ctx.clone(), d))?;
        Ok(Some(parse_stake(&value)))
    }

    fn memory_json(&self) -> Option<String> {
        serde_json::to_string(&self.memory).ok()
    }

    fn restore_memory(&mut self, json: &str) -> Result<(), String> {
        let value: Dynamic = serde_json::from_str(json)
            .map_err(|e| format!("script memory is not valid JSON: {e}"))?;
        if !value.is_map() {
            return Err("script memory must be a JSON object".into());
        }
        self.memory = value;
        Ok(())
    }
}

/// Script memory is saved to the ledger as JSON after every window and read back on resume,
/// so it may hold only what survives that trip unchanged: numbers, strings, booleans, (),
/// and arrays and maps of them. A closure, a `ctx` handle, a char or a blob would be saved
/// as something else (a string, an array), so a resumed run would differ from an
/// uninterrupted one; refusing them on every call makes every run fail alike. Non-finite
/// floats are refused for the same reason (JSON writes them as `null`).
fn data_only(engine: &Engine, value: &Dynamic, at: &str) -> Result<(), String> {
    if value.is_unit() || value.is_bool() || value.is_int() || value.is_string() {
        return Ok(());
    }
    if let Ok(f) = value.as_float() {
        return if f.is_finite() {
            Ok(())
        } else {
            Err(format!(
                "{at} is {f}, which the saved memory cannot hold; keep only finite numbers in `this`"
            ))
        };
    }
    if let Some(map) = value.read_lock::<Map>() {
        for (k, v) in map.iter() {
            data_only(engine, v, &format!("{at}.{}", printable(k)))?;
        }
        return Ok(());
    }
    if let Some(array) = value.read_lock::<rhai::Array>() {
        for (i, v) in array.iter().enumerate() {
            data_only(engine, v, &format!("{at}[{i}]"))?;
        }
        return Ok(());
    }
    Err(format!(
        "{at} holds a {}; `this` keeps only data (numbers, strings, booleans, (), arrays and \
         maps of them) because it is saved and restored as JSON",
        match engine.map_type_name(value.type_name()) {
            "Fn" => "function pointer or closure",
            name => name,
        }
    ))
}

fn describe_pos(pos: rhai::Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("line {l}, column {c}"),
        (Some(l), None) => format!("line {l}"),
        _ => "unknown position".into(),
    }
}

/// Map a Rhai error to a failure kind, looking through nested function-call frames to the
/// root cause, and say where it happened.
fn classify(err: &EvalAltResult, path: &Path) -> CallFailure {
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, e, _)
    | EvalAltResult::ErrorInModule(_, e, _) = inner
    {
        inner = e;
    }
    let kind = match inner {
        EvalAltResult::ErrorTerminated(token, _)
            if token
                .clone()
                .into_string()
                .is_ok_and(|s| s == DEADLINE_TOKEN) =>
        {
            FailureKind::Timeout
        }
        EvalAltResult::ErrorTooManyOperations(_) => FailureKind::OperationBudget,
        EvalAltResult::ErrorStackOverflow(_) => FailureKind::CallDepth,
        EvalAltResult::ErrorDataTooLarge(..) => FailureKind::DataTooLarge,
        _ => FailureKind::Runtime,
    };
    let message = match kind {
        FailureKind::Timeout => format!(
            "{}: call exceeded its wall-clock deadline (sandbox.call_timeout_ms) at {}",
            path.display(),
            describe_pos(inner.position())
        ),
        _ => format!("{}: {}", path.display(), describe_error(err)),
    };
    CallFailure { kind, message }
}

/// Rhai's own rendering of an error (the root cause, then one line per call frame and
/// module it passed through), with every string the script controls — a thrown value, a
/// module name — made [`printable`], so that a script cannot write lines of its own into
/// the log through an error.
fn describe_error(err: &EvalAltResult) -> String {
    let (frame, inner) = match err {
        EvalAltResult::ErrorInFunctionCall(name, src, inner, _) => {
            // Rhai names closures `anon$…` (its FN_ANONYMOUS prefix, not exported).
            let mut frame = if name.starts_with("anon$") {
                "in closure call".to_string()
            } else {
                format!("in call to function '{}'", printable(name))
            };
            if !src.is_empty() {
                frame.push_str(&format!(" (from '{}')", printable(src)));
            }
            (frame, inner)
        }
        EvalAltResult::ErrorInModule(name, inner, _) => {
            (format!("in module '{}'", printable(name)), inner)
        }
        root => return printable(&root.to_string()).into_owned(),
    };
    let pos = err.position();
    if pos.is_none() {
        format!("{}\n{frame}", describe_error(inner))
    } else {
        format!("{}\n{frame} ({pos})", describe_error(inner))
    }
}
