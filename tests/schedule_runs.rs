//! The scheduler against a real engine and real sled files: catch-up after
//! downtime, overlap, deduplication across restarts, and errors. The clock
//! starts at a time each test sets and then runs at real speed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use tempfile::TempDir;
use tether::engine::Engine;
use tether::engine::run::{Run, TriggerKind};
use tether::expr::{Limits, ScriptEngine};
use tether::store::{RunQuery, SledStore, Store};
use tether::trigger::schedule::{Clock, ScheduleStatus};
use tether::workflow::{Env, load_dir};

/// The wall clock moved so that it read `start` when the test began.
struct ShiftedClock {
    offset: TimeDelta,
}

impl ShiftedClock {
    fn starting_at(start: &str) -> Arc<Self> {
        Arc::new(ShiftedClock {
            offset: at(start) - Utc::now(),
        })
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("invalid test time {text}: {e}"))
        .with_timezone(&Utc)
}

/// A project directory of workflows and one store that engines share, so
/// a test can stop an engine and start another on the same sled files.
struct Setup {
    project: TempDir,
    store: Arc<SledStore>,
    _data: TempDir,
}

impl Setup {
    fn new(workflows: &[(&str, String)]) -> Self {
        let project = TempDir::new().expect("project directory");
        let dir = project.path().join("workflows");
        std::fs::create_dir_all(&dir).expect("workflows directory");
        for (file, text) in workflows {
            std::fs::write(dir.join(file), text).expect("writing a workflow");
        }
        let data = TempDir::new().expect("data directory");
        let store = Arc::new(SledStore::open(data.path()).expect("opening the store"));
        Setup {
            project,
            store,
            _data: data,
        }
    }

    fn engine(&self) -> Arc<Engine> {
        let scripts = ScriptEngine::new(Limits::default());
        let registry = load_dir(self.project.path(), &scripts, &Env::default());
        let problems: Vec<String> = registry.problems.iter().map(ToString::to_string).collect();
        assert!(problems.is_empty(), "workflow problems: {problems:?}");
        Engine::new(registry, self.store.clone(), scripts)
    }

    /// Stores the instant up to which `workflow`'s ticks were handled, as a
    /// previous engine would have.
    fn handled_until(&self, workflow: &str, time: &str) {
        let value = serde_json::json!({ "handled_until": time }).to_string();
        self.store
            .put_state(&format!("schedule/{workflow}"), value.as_bytes())
            .expect("writing the schedule state");
    }

    fn stored_handled_until(&self, workflow: &str) -> Option<Value> {
        let bytes = self
            .store
            .get_state(&format!("schedule/{workflow}"))
            .expect("reading the schedule state")?;
        let value: Value = serde_json::from_slice(&bytes).expect("JSON state");
        Some(value["handled_until"].clone())
    }

    /// Returns the workflow's runs with their trigger events, oldest first.
    fn runs(&self, workflow: &str) -> Vec<Run> {
        let query = RunQuery {
            workflow: Some(workflow.to_string()),
            status: None,
            before: None,
            limit: 1000,
            ..RunQuery::default()
        };
        let headers = self.store.list_runs(&query).expect("listing runs");
        let mut runs: Vec<Run> = headers
            .iter()
            .map(|header| {
                self.store
                    .load_run(&header.id)
                    .expect("loading a run")
                    .expect("a listed run exists")
            })
            .collect();
        runs.reverse();
        runs
    }

    fn scheduled_times(&self, workflow: &str) -> Vec<String> {
        self.runs(workflow)
            .iter()
            .map(|run| {
                let scheduled = run.trigger.scheduled_at.expect("a scheduled run");
                scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .collect()
    }
}

/// Waits until the schedule's task has caught up and reports a next fire
/// time, or an error.
async fn settled(engine: &Engine, workflow: &str) -> ScheduleStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = engine.schedules().get(workflow)
            && (status.next_fire.is_some() || status.error.is_some())
        {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "schedule {workflow} never settled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `count` runs of `workflow` have ended.
async fn finished_runs(setup: &Setup, workflow: &str, count: usize) -> Vec<Run> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = setup.runs(workflow);
        let ended = runs.iter().filter(|run| run.status.is_terminal()).count();
        if ended >= count {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "{ended} of {count} runs of {workflow} ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn every_three_hours(settings: &str) -> (&'static str, String) {
    let text = format!(
        "name: every-three-hours\ntrigger:\n  schedule: {{ cron: \"0 */3 * * *\"{settings} }}\nsteps:\n  - id: echo\n    script: trigger.scheduled_at\n"
    );
    ("every-three-hours.yaml", text)
}

const THREE_HOURS: &str = "every-three-hours";

/// The engine was down from just after midnight until 13:30, so the slots
/// at 03:00, 06:00, 09:00 and 12:00 were missed.
const DOWN_SINCE: &str = "2025-06-01T00:00:00Z";
const BACK_AT: &str = "2025-06-01T13:30:00Z";

#[tokio::test]
async fn latest_runs_newest_missed_slot_once() {
    let setup = Setup::new(&[every_three_hours("")]);
    setup.handled_until(THREE_HOURS, DOWN_SINCE);
    let engine = setup.engine();
    engine
        .start_with_clock(ShiftedClock::starting_at(BACK_AT))
        .expect("starting the engine");

    let status = settled(&engine, THREE_HOURS).await;
    assert_eq!(status.missed, 3);
    assert_eq!(status.next_fire, Some(at("2025-06-01T15:00:00Z")));
    assert_eq!(setup.scheduled_times(THREE_HOURS), ["2025-06-01T12:00:00Z"]);

    let runs = finished_runs(&setup, THREE_HOURS, 1).await;
    assert_eq!(runs[0].trigger.kind, TriggerKind::Schedule);
    assert_eq!(runs[0].output, Some(Value::from("2025-06-01T12:00:00Z")));
    assert_eq!(
        runs[0].trigger.dedup_key.as_deref(),
        Some("schedule:2025-06-01T12:00:00Z")
    );
    assert_eq!(
        setup.stored_handled_until(THREE_HOURS),
        Some(Value::from("2025-06-01T12:00:00Z"))
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn none_runs_no_missed_slot() {
    let setup = Setup::new(&[every_three_hours(", catch_up: none")]);
    setup.handled_until(THREE_HOURS, DOWN_SINCE);
    let engine = setup.engine();
    engine
        .start_with_clock(ShiftedClock::starting_at(BACK_AT))
        .expect("starting the engine");

    let status = settled(&engine, THREE_HOURS).await;
    assert_eq!(status.missed, 4);
    assert!(setup.runs(THREE_HOURS).is_empty());
    assert_eq!(
        setup.stored_handled_until(THREE_HOURS),
        Some(Value::from("2025-06-01T12:00:00Z"))
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn all_runs_newest_slots_up_to_limit() {
    let settings = ", catch_up: all, catch_up_limit: 3, overlap: allow";
    let setup = Setup::new(&[every_three_hours(settings)]);
    setup.handled_until(THREE_HOURS, DOWN_SINCE);
    let engine = setup.engine();
    engine
        .start_with_clock(ShiftedClock::starting_at(BACK_AT))
        .expect("starting the engine");

    let status = settled(&engine, THREE_HOURS).await;
    assert_eq!(status.missed, 1);
    assert_eq!(
        setup.scheduled_times(THREE_HOURS),
        [
            "2025-06-01T06:00:00Z",
            "2025-06-01T09:00:00Z",
            "2025-06-01T12:00:00Z"
        ]
    );
    let runs = finished_runs(&setup, THREE_HOURS, 3).await;
    let outputs: Vec<Option<Value>> = runs.iter().map(|run| run.output.clone()).collect();
    assert_eq!(
        outputs,
        [
            Some(Value::from("2025-06-01T06:00:00Z")),
            Some(Value::from("2025-06-01T09:00:00Z")),
            Some(Value::from("2025-06-01T12:00:00Z"))
        ]
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn first_activation_catches_up_nothing() {
    let setup = Setup::new(&[every_three_hours(", catch_up: all")]);
    let engine = setup.engine();
    engine
        .start_with_clock(ShiftedClock::starting_at(BACK_AT))
        .expect("starting the engine");

    let status = settled(&engine, THREE_HOURS).await;
    assert_eq!(status.missed, 0);
    assert_eq!(status.next_fire, Some(at("2025-06-01T15:00:00Z")));
    assert!(setup.runs(THREE_HOURS).is_empty());
    let stored = setup
        .stored_handled_until(THREE_HOURS)
        .expect("activation time stored");
    let stored = at(stored.as_str().expect("a time"));
    assert!(stored >= at(BACK_AT), "stored {stored}");
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn restart_never_runs_tick_twice() {
    let setup = Setup::new(&[every_three_hours("")]);
    setup.handled_until(THREE_HOURS, DOWN_SINCE);
    let first = setup.engine();
    first
        .start_with_clock(ShiftedClock::starting_at(BACK_AT))
        .expect("starting the first engine");
    settled(&first, THREE_HOURS).await;
    first.shutdown(Duration::from_secs(5)).await;

    // A crash before the state write would leave the old state behind; the
    // deduplication key still keeps the tick to one run.
    setup.handled_until(THREE_HOURS, DOWN_SINCE);
    let second = setup.engine();
    second
        .start_with_clock(ShiftedClock::starting_at(BACK_AT))
        .expect("starting the second engine");
    settled(&second, THREE_HOURS).await;
    assert_eq!(setup.scheduled_times(THREE_HOURS), ["2025-06-01T12:00:00Z"]);
    second.shutdown(Duration::from_secs(5)).await;
}

fn parked(name: &str, settings: &str) -> (String, String) {
    let text = format!(
        "name: {name}\ntrigger:\n  schedule: {{ cron: \"0 */3 * * *\", catch_up: all{settings} }}\nsteps:\n  - id: wait\n    delay: 1h\n"
    );
    (format!("{name}.yaml"), text)
}

#[tokio::test]
async fn skip_overlap_skips_while_run_unfinished() {
    let (file, text) = parked("parked", "");
    let setup = Setup::new(&[(file.as_str(), text)]);
    setup.handled_until("parked", DOWN_SINCE);
    let engine = setup.engine();
    engine
        .start_with_clock(ShiftedClock::starting_at(BACK_AT))
        .expect("starting the engine");

    let status = settled(&engine, "parked").await;
    assert_eq!(status.skipped, 3);
    assert_eq!(setup.scheduled_times("parked"), ["2025-06-01T03:00:00Z"]);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn queue_overlap_stores_every_tick() {
    let (file, text) = parked("queued", ", overlap: queue");
    let setup = Setup::new(&[(file.as_str(), text)]);
    setup.handled_until("queued", DOWN_SINCE);
    let engine = setup.engine();
    engine
        .start_with_clock(ShiftedClock::starting_at(BACK_AT))
        .expect("starting the engine");

    let status = settled(&engine, "queued").await;
    assert_eq!(status.skipped, 0);
    assert_eq!(setup.scheduled_times("queued").len(), 4);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn every_second_fires_on_whole_seconds() {
    let text = "name: each-second\ntrigger:\n  schedule: { cron: \"* * * * * *\", overlap: allow }\nsteps:\n  - id: echo\n    script: trigger.scheduled_at\n";
    let setup = Setup::new(&[("each-second.yaml", text.to_string())]);
    let engine = setup.engine();
    engine.start().expect("starting the engine");

    let runs = finished_runs(&setup, "each-second", 2).await;
    engine.shutdown(Duration::from_secs(5)).await;
    let times: Vec<DateTime<Utc>> = runs
        .iter()
        .filter_map(|run| run.trigger.scheduled_at)
        .collect();
    assert_eq!(times.len(), runs.len());
    for pair in times.windows(2) {
        assert!(pair[0] < pair[1], "scheduled times repeat: {times:?}");
    }
    for time in &times {
        assert_eq!(time.timestamp_subsec_nanos(), 0, "{time}");
    }
}

#[tokio::test]
async fn broken_schedule_errors_others_keep_firing() {
    // 29 February after 4999 first comes in 5004, past the latest year the
    // cron library searches (5000), so that schedule has no next time.
    let leap_day = "name: leap-day\ntrigger:\n  schedule: { cron: \"0 0 29 2 *\" }\nsteps:\n  - id: one\n    script: \"1\"\n";
    let each_second = "name: each-second\ntrigger:\n  schedule: { cron: \"* * * * * *\", overlap: allow }\nsteps:\n  - id: one\n    script: \"1\"\n";
    let setup = Setup::new(&[
        ("leap-day.yaml", leap_day.to_string()),
        ("each-second.yaml", each_second.to_string()),
    ]);
    let engine = setup.engine();
    engine
        .start_with_clock(ShiftedClock::starting_at("4999-12-31T23:00:00Z"))
        .expect("starting the engine");

    let status = settled(&engine, "leap-day").await;
    let error = status.error.expect("the schedule is marked errored");
    assert!(error.contains("0 0 29 2 *"), "{error}");
    finished_runs(&setup, "each-second", 1).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(axum::serve(listener, tether::web::router(engine.clone())).into_future());
    let listing: Value = reqwest::get(format!("http://{addr}/api/workflows"))
        .await
        .expect("GET /api/workflows")
        .json()
        .await
        .expect("a JSON answer");
    let workflows = listing["workflows"].as_array().expect("a workflow list");
    let find = |name: &str| {
        workflows
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {listing}"))["trigger"]["schedule"]
            .clone()
    };
    let broken = find("leap-day");
    assert!(broken["error"].is_string(), "{broken}");
    assert_eq!(broken["next_fire"], Value::Null);
    assert_eq!(broken["timezone"], "UTC");
    let working = find("each-second");
    assert_eq!(working["error"], Value::Null);
    assert!(working["next_fire"].is_string(), "{working}");
    engine.shutdown(Duration::from_secs(5)).await;
}
