//! The shared, sandboxed Rhai engine. One [`ScriptEngine`] is built at startup and shared by all
//! runs and threads, because building a Rhai engine costs far more than evaluating a compiled
//! script. Scripts and templates are compiled once at load and evaluated against a [`Context`].

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{AST, Dynamic, Engine, OptimizationLevel, ParseErrorType, Scope};

use super::error::{CompileError, EvalError, Signal};
use super::template::{Template, ValueTemplate};
use super::{catalog, money, scan, template, value};

/// Sandbox limits applied to every evaluation. A zero value disables a limit, as in Rhai, except
/// `max_call_depth`, where zero allows no script function call at all.
///
/// NOTE: Rhai 1.27 clones, drops and measures nested maps and arrays recursively, so a script
/// that nests them thousands of levels deep overflows the thread's stack and aborts the
/// process. Only `max_map_size` and `max_array_size` bound that depth. In a release build on a
/// 2-core AMD EPYC, 6,000 levels overflowed a 2 MiB stack and `m = #{a: take(m)}` in a loop
/// reached 20,000 levels in 7 s, so evaluate on threads with a large stack (for example 64 MiB).
///
/// NOTE: Rhai checks a map's size when the map is passed to a function, not when
/// `m[key] = value` adds an entry, so a loop of such assignments grows a map (and memory) until
/// `max_operations` or `timeout` stops it. The size limits also apply to context values: a
/// script that passes an input array of more than `max_array_size` items to a function fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of Rhai operations in one evaluation. Rhai counts about one per evaluated
    /// expression, statement and function call.
    pub max_operations: u64,
    /// Maximum depth of nested script function calls.
    pub max_call_depth: usize,
    /// Maximum nesting depth of expressions, checked when code is compiled.
    pub max_expr_depth: usize,
    /// Maximum length of a string, in bytes.
    pub max_string_size: usize,
    /// Maximum number of array items in one value, counted over all arrays nested in it.
    pub max_array_size: usize,
    /// Maximum number of map entries in one value, counted over all maps nested in it.
    pub max_map_size: usize,
    /// Maximum wall-clock time of one evaluation.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 1_000_000,
            max_call_depth: 32,
            max_expr_depth: 64,
            max_string_size: 1024 * 1024,
            max_array_size: 100_000,
            max_map_size: 100_000,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Keywords rejected at compile time. `import` would load modules (the module resolver also
/// resolves nothing), and `eval` would compile code at run time.
const DISABLED_SYMBOLS: [&str; 2] = ["import", "eval"];

/// The wall clock is read once per this many operations, so a runaway script is stopped within
/// about this many operations after its deadline.
const CLOCK_CHECK_INTERVAL: u64 = 256;

/// Upper bound on the compile passes that look for referenced variables.
const MAX_ROOT_PASSES: usize = 256;

thread_local! {
    /// Deadline of the evaluation running on this thread. Rhai's progress callback receives
    /// only the operation count, so the deadline is passed to it here.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };

    /// Operation budget of a brief evaluation running on this thread.
    static BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Shared sandboxed engine. Cloning is cheap because the engine sits behind an `Arc`.
#[derive(Clone)]
pub struct ScriptEngine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// Same configuration in strict-variables mode, used only to list referenced variables.
    analyzer: Engine,
    limits: Limits,
}

/// A compiled Rhai script. Its output is the value of its last expression.
#[derive(Clone, Debug)]
pub struct Script {
    source: Arc<str>,
    ast: Arc<AST>,
    roots: Arc<[String]>,
}

impl Script {
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Returns the variables the script reads from its [`Context`] (for example `trigger` or
    /// `steps`), in order of first use. Names used only inside a `fn` body may be missing,
    /// because Rhai functions cannot see those variables at run time anyway.
    pub fn referenced_roots(&self) -> &[String] {
        &self.roots
    }

    /// Returns the names `X` read as `secrets.X` or `secrets["X"]` in the script.
    pub fn secrets(&self) -> Vec<String> {
        let mut names = Vec::new();
        scan::secrets_in_code(&self.source, &mut names);
        names
    }
}

/// Evaluation scope: named top-level values such as `trigger`, `steps`, `vars`, `secrets`,
/// `run`, `input`, `response`, `item` and `index`.
#[derive(Clone, Default)]
pub struct Context {
    scope: Scope<'static>,
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value` converted with [`value::json_to_dynamic`], replacing any earlier
    /// value of that name.
    pub fn set(&mut self, name: &str, value: &serde_json::Value) {
        self.set_dynamic(name, value::json_to_dynamic(value));
    }

    pub fn set_dynamic(&mut self, name: &str, value: Dynamic) {
        self.scope.set_or_push(name, value);
    }

    /// Adds `name` as a read-only value shared by every copy of this
    /// context, so copying the context (once per step, and once per
    /// evaluation) no longer copies the value. Scripts cannot change it; a
    /// script that needs a changed version copies it first
    /// (`let body = trigger.body; body.x = 1;`).
    pub fn set_shared(&mut self, name: &str, value: &serde_json::Value) {
        let shared = value::json_to_dynamic(value).into_read_only().into_shared();
        if self.scope.contains(name) {
            let _ = self.scope.remove::<Dynamic>(name);
        }
        self.scope.push_constant_dynamic(name.to_string(), shared);
    }
}

impl ScriptEngine {
    pub fn new(limits: Limits) -> Self {
        let engine = build_engine(&limits);
        let mut analyzer = build_engine(&limits);
        analyzer.set_strict_variables(true);
        analyzer.set_optimization_level(OptimizationLevel::None);
        Self {
            inner: Arc::new(Inner {
                engine,
                analyzer,
                limits,
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub fn compile_script(&self, source: &str) -> Result<Script, CompileError> {
        let ast =
            self.inner.engine.compile(source).map_err(|error| {
                CompileError::from_parse("script", &error, self.limits(), (1, 1))
            })?;
        Ok(Script {
            source: source.into(),
            ast: Arc::new(ast),
            roots: self.find_roots(source).into(),
        })
    }

    pub fn compile_template(&self, text: &str) -> Result<Template, CompileError> {
        template::compile_template(self, text)
    }

    /// Compiles every string inside `value`, recursively, into a [`ValueTemplate`]. Object keys
    /// are kept as they are.
    pub fn compile_value(&self, value: &serde_json::Value) -> Result<ValueTemplate, CompileError> {
        template::compile_value(self, value)
    }

    /// Evaluates `script` and converts its output to JSON.
    pub fn eval_script(
        &self,
        script: &Script,
        ctx: &Context,
    ) -> Result<serde_json::Value, EvalError> {
        let output = self.eval_ast(&script.ast, ctx)?;
        value::dynamic_to_json(&output).map_err(|error| {
            EvalError::Runtime(format!(
                "script output cannot be converted to JSON: {error}"
            ))
        })
    }

    /// Evaluates a script only if it finishes within `budget` operations,
    /// which is short enough to run on an async worker thread. A longer
    /// script ends with [`EvalError::OverBudget`] and has had no effect, so
    /// the caller can evaluate it again with [`ScriptEngine::eval_script`]
    /// on a thread where it may run long.
    pub fn eval_script_briefly(
        &self,
        script: &Script,
        ctx: &Context,
        budget: u64,
    ) -> Result<serde_json::Value, EvalError> {
        let previous = BUDGET.replace(Some(budget));
        let outcome = self.eval_script(script, ctx);
        BUDGET.set(previous);
        outcome
    }

    pub fn render(
        &self,
        template: &Template,
        ctx: &Context,
    ) -> Result<serde_json::Value, EvalError> {
        template.render(self, ctx)
    }

    pub fn render_value(
        &self,
        template: &ValueTemplate,
        ctx: &Context,
    ) -> Result<serde_json::Value, EvalError> {
        template.render(self, ctx)
    }

    /// Compiles one template expression. `origin` is the 1-based line and column where the
    /// expression starts in its template, so that errors point into the template.
    pub(super) fn compile_expression(
        &self,
        expression: &str,
        origin: (usize, usize),
    ) -> Result<AST, CompileError> {
        self.inner
            .engine
            .compile_expression(expression)
            .map_err(|error| {
                let subject = format!("expression `{}`", expression.trim());
                CompileError::from_parse(&subject, &error, self.limits(), origin)
            })
    }

    /// Evaluates a compiled AST on a copy of the context's variables, so a script that assigns
    /// to them changes nothing outside this evaluation.
    pub(super) fn eval_ast(&self, ast: &AST, ctx: &Context) -> Result<Dynamic, EvalError> {
        // NOTE: the copy clones every context value, which costs time proportional to the size
        // of `steps`, `trigger` and the other values on each evaluation.
        let mut scope = ctx.scope.clone();
        let _deadline = DeadlineGuard::start(self.inner.limits.timeout);
        self.inner
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, ast)
            .map_err(|error| EvalError::from_rhai(*error, self.limits()))
    }

    /// Lists the variables `source` reads from its context. The strict-variables parser rejects
    /// the first undefined variable, so each pass declares that name and compiles again.
    fn find_roots(&self, source: &str) -> Vec<String> {
        let mut scope = Scope::new();
        let mut roots: Vec<String> = Vec::new();
        for _ in 0..MAX_ROOT_PASSES {
            let Err(error) = self.inner.analyzer.compile_with_scope(&scope, source) else {
                break;
            };
            let ParseErrorType::VariableUndefined(name) = error.err_type() else {
                break;
            };
            if roots.contains(name) {
                // A variable read inside a `fn` body stays undefined whatever the scope holds.
                break;
            }
            scope.push_dynamic(name.as_str(), Dynamic::UNIT);
            roots.push(name.clone());
        }
        roots
    }
}

/// Builds a Rhai engine with the sandbox limits, the disabled symbols, logging of `print` and
/// `debug`, and this module's functions.
fn build_engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new();
    engine.set_module_resolver(DummyModuleResolver::new());
    for symbol in DISABLED_SYMBOLS {
        engine.disable_symbol(symbol);
    }
    engine
        .set_max_call_levels(limits.max_call_depth)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size);
    engine.on_print(|text| tracing::debug!(target: "tether::script", "print: {text}"));
    engine.on_debug(|text, _source, position| {
        tracing::debug!(target: "tether::script", %position, "debug: {text}");
    });
    install_progress_check(&mut engine, limits);
    register_signals(&mut engine);
    disable_sleep(&mut engine);
    money::register(&mut engine);
    catalog::register(&mut engine);
    engine
}

/// Enforces `max_operations` and `timeout` from Rhai's progress callback, which runs once per
/// operation.
fn install_progress_check(engine: &mut Engine, limits: &Limits) {
    let max_operations = limits.max_operations;
    let timeout = limits.timeout;
    engine.on_progress(move |operations| {
        if max_operations > 0 && operations > max_operations {
            let message = format!("script exceeded the limit of {max_operations} operations");
            return Some(Signal::Limit(message).into_dynamic());
        }
        if let Some(budget) = BUDGET.get()
            && operations > budget
        {
            return Some(Signal::OverBudget(budget).into_dynamic());
        }
        if operations % CLOCK_CHECK_INTERVAL == 0 && deadline_passed() {
            let message = format!("script ran longer than the {timeout:?} time limit");
            return Some(Signal::Limit(message).into_dynamic());
        }
        None
    });
}

/// Registers `skip(reason)` and `fail(reason)`. The reason may be any value and is converted
/// to text.
fn register_signals(engine: &mut Engine) {
    engine.register_fn("skip", |reason: Dynamic| -> Result<Dynamic, _> {
        Err(Signal::Skip(reason.to_string()).into_error())
    });
    engine.register_fn("fail", |reason: Dynamic| -> Result<Dynamic, _> {
        Err(Signal::Fail(reason.to_string()).into_error())
    });
}

/// Replaces Rhai's `sleep`, which would block the thread where neither the operation limit nor
/// the time limit can stop it. `disable_symbol` cannot remove it because `sleep` is a function,
/// not a keyword. Functions registered on the engine are found before the standard package's.
fn disable_sleep(engine: &mut Engine) {
    fn rejected() -> Result<(), Box<rhai::EvalAltResult>> {
        Err(
            "sleep() is not available in workflow scripts, because it would block a worker thread"
                .into(),
        )
    }
    engine.register_fn("sleep", |_seconds: rhai::INT| rejected());
    engine.register_fn("sleep", |_seconds: rhai::FLOAT| rejected());
}

fn deadline_passed() -> bool {
    DEADLINE
        .get()
        .is_some_and(|deadline| Instant::now() >= deadline)
}

/// Sets this thread's evaluation deadline and restores the previous one when dropped.
struct DeadlineGuard {
    previous: Option<Instant>,
}

impl DeadlineGuard {
    fn start(timeout: Duration) -> Self {
        let deadline = if timeout.is_zero() {
            None
        } else {
            Instant::now().checked_add(timeout)
        };
        Self {
            previous: DEADLINE.replace(deadline),
        }
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.set(self.previous);
    }
}
