//! Every sandbox setting of the Rhai engine, made in one place.
//!
//! A strategy script gets pure computation and the read-only `ctx`, nothing else: no files,
//! no network, no environment, no clock but `ctx.now`, no `eval`, and `import` resolves only
//! modules inside the strategies folder. Each resource limit comes from `[sandbox]` in the
//! config, which bounds them so the sandbox cannot be configured away. Production, `validate`
//! and tests all build their engines here, so what is tested is what runs.

use crate::config::SandboxConfig;
use rhai::module_resolvers::FileModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Module, ModuleResolver, Position, Shared};
use std::cell::{Cell, RefCell};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Lines a script logged during one call, drained by the host after the call.
///
/// Owned jointly (via `Rc`) by the engine's `log`/`print` callbacks and the host; it exists
/// so script output is tagged with the script's name and capped per call instead of flooding.
#[derive(Debug, Default)]
pub struct LogBuffer {
    /// Lines kept this call.
    pub lines: Vec<String>,
    /// Lines dropped this call because the cap was reached.
    pub dropped: usize,
    /// Cap per call.
    pub cap: usize,
}

/// The per-call wall-clock deadline, armed by the host before each call.
///
/// Shared with the engine's progress callback, which polls it every few hundred operations:
/// the operation budget bounds work, this bounds time (a host function could be slow).
/// It also remembers how many operations the call used, for `validate`'s budget report.
#[derive(Clone, Debug, Default)]
pub struct Deadline(Rc<Cell<Option<Instant>>>, Rc<Cell<u64>>);

impl Deadline {
    /// Start the clock for one call.
    pub fn arm(&self, budget: Duration) {
        self.1.set(0);
        self.0.set(Some(Instant::now() + budget));
    }
    /// Operations the last call used (as counted by Rhai's progress callback).
    pub fn operations(&self) -> u64 {
        self.1.get()
    }
    /// Stop the clock.
    pub fn disarm(&self) {
        self.0.set(None);
    }
    fn expired(&self) -> bool {
        matches!(self.0.get(), Some(t) if Instant::now() >= t)
    }
}

/// Marker value the progress callback returns when the deadline passes, so the host can
/// tell a timeout from other terminations.
pub const DEADLINE_TOKEN: &str = "updown:deadline";

/// Build a sandboxed engine for scripts living under `strategies_root`.
pub fn new_engine(
    limits: &SandboxConfig,
    strategies_root: &Path,
    logs: Rc<RefCell<LogBuffer>>,
    deadline: Deadline,
    imports: Rc<RefCell<Vec<PathBuf>>>,
) -> Engine {
    let mut engine = Engine::new();

    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.set_max_modules(limits.max_modules);
    engine.set_max_variables(1_000);
    engine.set_max_functions(1_000);

    // Typos in variable names and map keys are errors, not silent `()`.
    engine.set_strict_variables(true);
    engine.set_fail_on_invalid_map_property(true);
    engine.disable_symbol("eval");

    engine.on_progress(move |ops| {
        deadline.1.set(ops);
        if ops % 256 == 0 && deadline.expired() {
            Some(Dynamic::from(DEADLINE_TOKEN))
        } else {
            None
        }
    });

    let print_logs = logs.clone();
    engine.on_print(move |s| push_log(&print_logs, s));
    let debug_logs = logs.clone();
    engine.on_debug(move |s, _, _| push_log(&debug_logs, s));
    engine.register_fn("log", move |s: &str| push_log(&logs, s));

    engine.set_module_resolver(ConfinedResolver::new(
        strategies_root,
        imports,
        limits.max_modules,
    ));
    engine
}

fn push_log(logs: &Rc<RefCell<LogBuffer>>, line: &str) {
    let mut buf = logs.borrow_mut();
    if buf.lines.len() < buf.cap {
        buf.lines.push(super::text::printable(line).into_owned());
    } else {
        buf.dropped += 1;
    }
}

/// Resolves `import "name"` to `<strategies>/name.rhai`, and nowhere else.
///
/// Absolute paths and `..` are refused before the file system is touched, and the resolved
/// file is canonicalised so a symlink cannot lead outside the folder either. Every module it
/// resolves is recorded, so the host can hash a script version with its modules and hot
/// reload can watch them.
///
/// It also owns the two limits Rhai cannot keep across modules. Rhai evaluates an imported
/// module with a fresh runtime state, so its own module count (`set_max_modules`) sees only
/// one file's imports, and a module that imports itself (directly or through others) recurses
/// until the thread's stack overflows, which aborts the whole process — fatal on hot reload,
/// where a broken edit must only be refused. So the resolver keeps the chain of modules being
/// loaded, refusing one that is already on it, and counts every distinct module loaded for
/// the script against `sandbox.max_modules`.
pub struct ConfinedResolver {
    root: PathBuf,
    inner: FileModuleResolver,
    resolved: Rc<RefCell<Vec<PathBuf>>>,
    loading: RefCell<Vec<(PathBuf, String)>>,
    max_modules: usize,
}

impl ConfinedResolver {
    /// A resolver confined to `root`, recording resolved module files into `resolved` and
    /// allowing at most `max_modules` distinct modules in all.
    pub fn new(root: &Path, resolved: Rc<RefCell<Vec<PathBuf>>>, max_modules: usize) -> Self {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        ConfinedResolver {
            inner: FileModuleResolver::new_with_path(&root),
            root,
            resolved,
            loading: RefCell::new(Vec::new()),
            max_modules,
        }
    }

    fn check(&self, path: &str, pos: Position) -> Result<PathBuf, Box<EvalAltResult>> {
        let refuse = |why: &str| {
            refused(
                path,
                &format!("{why}; modules must live in the strategies folder"),
                pos,
            )
        };
        let p = Path::new(path);
        if p.is_absolute()
            || p.components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(refuse("absolute paths and `..` are not allowed"));
        }
        let file = self.root.join(p).with_extension("rhai");
        match file.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Ok(real),
            Ok(_) => Err(refuse("it resolves outside the strategies folder")),
            Err(_) => Err(refuse(&format!("no such module {}", file.display()))),
        }
    }
}

fn refused(path: &str, why: &str, pos: Position) -> Box<EvalAltResult> {
    EvalAltResult::ErrorInModule(
        path.to_string(),
        format!("import {path:?} refused: {why}").into(),
        pos,
    )
    .into()
}

impl ModuleResolver for ConfinedResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let file = self.check(path, pos)?;
        {
            let loading = self.loading.borrow();
            if let Some(at) = loading.iter().position(|(f, _)| *f == file) {
                let chain: Vec<&str> = loading[at..]
                    .iter()
                    .map(|(_, name)| name.as_str())
                    .chain([path])
                    .collect();
                return Err(refused(
                    path,
                    &format!("import cycle {}", chain.join(" → ")),
                    pos,
                ));
            }
            let resolved = self.resolved.borrow();
            if !resolved.contains(&file) && resolved.len() >= self.max_modules {
                return Err(refused(
                    path,
                    &format!(
                        "the script and its modules would load more than {} modules in all \
                         (sandbox.max_modules)",
                        self.max_modules
                    ),
                    pos,
                ));
            }
        }
        // Recorded before loading, so the modules this one imports count against the limit.
        {
            let mut resolved = self.resolved.borrow_mut();
            if !resolved.contains(&file) {
                resolved.push(file.clone());
            }
        }
        self.loading.borrow_mut().push((file, path.to_string()));
        // Always resolve against the root, never relative to the importing file.
        let module = self.inner.resolve(engine, None, path, pos);
        self.loading.borrow_mut().pop();
        module
    }
}
