//! The [`MetadataStore`] conformance suite.

use serde_json::json;
use trackstack_domain::model::*;
use trackstack_domain::query::Field;

use super::at;
use crate::{ArtifactLogOutcome, MetadataStore, RunCreateOutcome, StoreError};

fn new_run(id: &str, project: &str) -> NewRun {
    NewRun {
        id: id.into(),
        project: project.into(),
        name: format!("name-{id}"),
        group: None,
        job_type: None,
        tags: vec![],
        notes: String::new(),
        config: json!({"lr": 0.1, "model": {"layers": 4}}).as_object().unwrap().clone(),
        metadata: JsonMap::new(),
    }
}

async fn create(store: &dyn MetadataStore, run: NewRun, offset_ms: i64) -> Run {
    match store.create_run(run, at(offset_ms)).await.unwrap() {
        RunCreateOutcome::Created(run) => run,
        RunCreateOutcome::Existing(run) => panic!("run {} already existed", run.id),
    }
}

pub async fn projects_are_unique_and_listed_by_name(store: &dyn MetadataStore) {
    store.create_project("zeta", "last", Retention::default(), at(0)).await.unwrap();
    let alpha = store.create_project("alpha", "first", Retention::default(), at(1)).await.unwrap();
    assert_eq!((alpha.name.as_str(), alpha.description.as_str(), alpha.created_at), ("alpha", "first", at(1)));
    let err = store.create_project("alpha", "again", Retention::default(), at(2)).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    let names: Vec<String> = store.list_projects().await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(store.get_project("alpha").await.unwrap(), Some(alpha));
    assert_eq!(store.get_project("missing").await.unwrap(), None);
}

pub async fn run_creation_is_idempotent_per_project(store: &dyn MetadataStore) {
    let created = create(store, new_run("r1", "vision"), 0).await;
    assert_eq!(created.state, RunState::Running);
    assert_eq!(created.created_at, at(0));
    assert_eq!(created.config["model"]["layers"], 4);
    assert!(store.get_project("vision").await.unwrap().is_some(), "the project is created with the run");

    let mut retry = new_run("r1", "vision");
    retry.name = "other name".into();
    match store.create_run(retry, at(5)).await.unwrap() {
        RunCreateOutcome::Existing(run) => assert_eq!(run, created, "a repeated create changes nothing"),
        other => panic!("expected Existing, got {other:?}"),
    }
    let err = store.create_run(new_run("r1", "audio"), at(6)).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(store.get_run("r1").await.unwrap(), Some(created));
    assert_eq!(store.get_run("nope").await.unwrap(), None);
}

pub async fn run_updates_merge_config_and_replace_tags(store: &dyn MetadataStore) {
    create(store, new_run("r1", "p"), 0).await;
    let update = RunUpdate {
        name: Some("renamed".into()),
        group: Some(Some("sweep-1".into())),
        job_type: Some(Some("train".into())),
        notes: Some("first try".into()),
        tags: Some(vec!["b".into(), "a".into()]),
        config_merge: json!({"lr": 0.01, "batch": 32}).as_object().unwrap().clone(),
        heartbeat: true,
        ..Default::default()
    };
    let run = store.update_run("r1", update.clone(), at(10)).await.unwrap();
    assert_eq!(run.name, "renamed");
    assert_eq!((run.group.as_deref(), run.job_type.as_deref()), (Some("sweep-1"), Some("train")));
    assert_eq!(run.notes, "first try");
    assert_eq!(run.tags, ["b", "a"]);
    assert_eq!(serde_json::Value::Object(run.config.clone()), json!({"lr": 0.01, "batch": 32, "model": {"layers": 4}}));
    assert_eq!(run.heartbeat_at, at(10));
    let again = store.update_run("r1", update, at(10)).await.unwrap();
    assert_eq!(again, run, "updates are idempotent");
    let cleared = RunUpdate { group: Some(None), tags: Some(vec![]), ..Default::default() };
    let run = store.update_run("r1", cleared, at(11)).await.unwrap();
    assert_eq!((run.group, run.tags.len()), (None, 0));
    let err = store.update_run("missing", RunUpdate::default(), at(12)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub async fn summary_follows_the_highest_step_unless_set_explicitly(store: &dyn MetadataStore) {
    create(store, new_run("r1", "p"), 0).await;
    let metric = |key: &str, step, value| SummaryMetric { key: key.into(), step, value };
    let update = |metrics| RunUpdate { summary_metrics: metrics, ..Default::default() };
    store.update_run("r1", update(vec![metric("loss", 5, 0.5), metric("acc", 5, f64::NAN)]), at(1)).await.unwrap();
    let run = store.update_run("r1", update(vec![metric("loss", 3, 0.9)]), at(2)).await.unwrap();
    assert_eq!(run.summary["loss"], json!(0.5), "an older step does not replace the summary");
    assert_eq!(run.summary["acc"], json!("NaN"));
    let run = store.update_run("r1", update(vec![metric("loss", 5, 0.4)]), at(3)).await.unwrap();
    assert_eq!(run.summary["loss"], json!(0.4), "a rewrite of the same step does");

    let explicit = RunUpdate {
        summary_set: json!({"loss": 0.1, "best": {"epoch": 3}}).as_object().unwrap().clone(),
        ..Default::default()
    };
    store.update_run("r1", explicit, at(4)).await.unwrap();
    let run = store.update_run("r1", update(vec![metric("loss", 9, 0.3)]), at(5)).await.unwrap();
    assert_eq!(run.summary["loss"], json!(0.1), "an explicit value is kept while metrics are logged");
    assert_eq!(run.summary["best"], json!({"epoch": 3}));
    let unset = RunUpdate { summary_set: json!({"loss": null}).as_object().unwrap().clone(), ..Default::default() };
    let run = store.update_run("r1", unset, at(6)).await.unwrap();
    assert_eq!(run.summary["loss"], json!(0.3), "removing the explicit value shows the metric again");
}

pub async fn finishing_sets_end_time_once_and_resuming_reopens(store: &dyn MetadataStore) {
    create(store, new_run("r1", "p"), 0).await;
    let finish = RunUpdate { state: Some(RunState::Failed), exit_code: Some(3), ..Default::default() };
    let run = store.update_run("r1", finish.clone(), at(100)).await.unwrap();
    assert_eq!((run.state, run.exit_code, run.ended_at), (RunState::Failed, Some(3), Some(at(100))));
    let run = store.update_run("r1", finish, at(200)).await.unwrap();
    assert_eq!(run.ended_at, Some(at(100)), "a replayed finish keeps the first end time");

    let resumed = match store.create_run(new_run("r1", "p"), at(300)).await.unwrap() {
        RunCreateOutcome::Existing(run) => run,
        other => panic!("expected Existing, got {other:?}"),
    };
    assert_eq!((resumed.state, resumed.ended_at, resumed.exit_code), (RunState::Running, None, None));
    assert_eq!(resumed.created_at, at(0));
}

pub async fn deleting_a_run_removes_it(store: &dyn MetadataStore) {
    create(store, new_run("r1", "p"), 0).await;
    assert!(store.delete_run("r1").await.unwrap());
    assert!(!store.delete_run("r1").await.unwrap());
    assert_eq!(store.get_run("r1").await.unwrap(), None);
    create(store, new_run("r1", "p"), 1).await;
}

async fn list_all(store: &dyn MetadataStore, mut query: RunListQuery) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = store.list_runs(&query).await.unwrap();
        assert!(page.runs.len() <= query.limit);
        ids.extend(page.runs.into_iter().map(|r| r.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return ids,
        }
    }
}

pub async fn run_listing_pages_cover_every_run_once(store: &dyn MetadataStore) {
    // Several runs share a creation time and a name, so the id must break ties.
    for i in 0..23 {
        let mut run = new_run(&format!("r{i:02}"), "p");
        run.name = format!("name-{}", i % 5);
        create(store, run, i / 3).await;
    }
    create(store, new_run("other", "q"), 0).await;
    for sort in ["-created_at", "created_at", "name", "-name"] {
        let order = trackstack_domain::query::parse_order(sort).unwrap();
        let query = RunListQuery { project: "p".into(), order: order.clone(), limit: 4, ..Default::default() };
        let ids = list_all(store, query).await;
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((ids.len(), unique.len()), (23, 23), "{sort}: {ids:?}");
        let whole = store
            .list_runs(&RunListQuery { project: "p".into(), order, limit: 100, ..Default::default() })
            .await
            .unwrap();
        let keys: Vec<(i64, String)> = whole
            .runs
            .iter()
            .map(|r| {
                if sort.ends_with("name") {
                    (0, r.name.clone())
                } else {
                    (r.created_at.timestamp_millis(), String::new())
                }
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if sort.starts_with('-') {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{sort} order");
        assert_eq!(ids, whole.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), "{sort}: pages equal one page");
    }
}

pub async fn run_listing_filters_by_state_tag_and_name(store: &dyn MetadataStore) {
    for (i, (name, tags, state)) in [
        ("ResNet-base", vec!["baseline"], RunState::Finished),
        ("resnet-wide", vec!["baseline", "wide"], RunState::Running),
        ("vit", vec!["wide"], RunState::Failed),
    ]
    .into_iter()
    .enumerate()
    {
        let mut run = new_run(&format!("r{i}"), "p");
        run.name = name.into();
        run.tags = tags.into_iter().map(String::from).collect();
        create(store, run, i as i64).await;
        if state.is_terminal() {
            store
                .update_run(&format!("r{i}"), RunUpdate { state: Some(state), ..Default::default() }, at(50))
                .await
                .unwrap();
        }
    }
    let query = |f: fn(&mut RunListQuery)| {
        let order = trackstack_domain::query::parse_order("created_at").unwrap();
        let mut q = RunListQuery { project: "p".into(), order, limit: 10, ..Default::default() };
        f(&mut q);
        q
    };
    assert_eq!(list_all(store, query(|q| q.state = Some(RunState::Running))).await, ["r1"]);
    assert_eq!(list_all(store, query(|q| q.tag = Some("baseline".into()))).await, ["r0", "r1"]);
    assert_eq!(list_all(store, query(|q| q.name_contains = Some("RESNET".into()))).await, ["r0", "r1"]);
    assert_eq!(
        list_all(store, query(|q| q.name_contains = Some("%".into()))).await,
        Vec::<String>::new(),
        "LIKE wildcards are literal"
    );
    let both = query(|q| {
        q.tag = Some("wide".into());
        q.name_contains = Some("net".into());
    });
    assert_eq!(list_all(store, both).await, ["r1"]);
}

pub async fn artifact_versions_are_numbered_and_deduplicated(store: &dyn MetadataStore) {
    create(store, new_run("r1", "p"), 0).await;
    create(store, new_run("r2", "p"), 1).await;
    let file =
        |path: &str, digest: char| ArtifactFile { path: path.into(), digest: digest.to_string().repeat(64), size: 10 };
    let version = |run: &str, files: Vec<ArtifactFile>, aliases: Vec<&str>| {
        let mut files = files;
        let (digest, size) = trackstack_domain::validate::artifact_manifest(&mut files).unwrap();
        NewArtifactVersion {
            project: "p".into(),
            name: "model".into(),
            kind: "model".into(),
            aliases: aliases.into_iter().map(String::from).collect(),
            metadata: JsonMap::new(),
            run_id: run.into(),
            files,
            digest,
            size,
        }
    };
    let v0 = match store.log_artifact(version("r1", vec![file("w.bin", 'a')], vec!["best"]), at(10)).await.unwrap() {
        ArtifactLogOutcome::Created(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!((v0.version.as_str(), v0.size, v0.created_by_run.as_deref()), ("v0", 10, Some("r1")));
    match store.log_artifact(version("r1", vec![file("w.bin", 'a')], vec![]), at(11)).await.unwrap() {
        ArtifactLogOutcome::Existing(v) => assert_eq!(v.version, "v0"),
        other => panic!("equal content must reuse v0: {other:?}"),
    }
    let v1 = match store
        .log_artifact(version("r2", vec![file("w.bin", 'b'), file("cfg.json", 'c')], vec!["best"]), at(12))
        .await
        .unwrap()
    {
        ArtifactLogOutcome::Created(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(v1.version, "v1");
    assert_eq!(v1.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["cfg.json", "w.bin"]);
    assert!(v1.aliases.contains(&"best".to_owned()) && v1.aliases.contains(&"latest".to_owned()), "{:?}", v1.aliases);

    let get = |label: &'static str| async move {
        store.get_artifact_version("p", "model", label).await.unwrap().map(|v| v.version)
    };
    assert_eq!(get("latest").await.as_deref(), Some("v1"));
    assert_eq!(get("best").await.as_deref(), Some("v1"), "an alias moves to the newer version");
    assert_eq!(get("v0").await.as_deref(), Some("v0"));
    assert_eq!(get("v7").await, None);
    let v0_again = store.get_artifact_version("p", "model", "v0").await.unwrap().unwrap();
    assert!(v0_again.aliases.is_empty(), "{:?}", v0_again.aliases);

    let r1: Vec<String> = store.list_run_artifacts("r1").await.unwrap().into_iter().map(|v| v.version).collect();
    assert_eq!(r1, ["v0"]);
    let latest = store.list_project_artifacts("p").await.unwrap();
    assert_eq!((latest.len(), latest[0].version.as_str()), (1, "v1"));
}

pub async fn silent_running_runs_are_marked_crashed(store: &dyn MetadataStore) {
    create(store, new_run("quiet", "p"), 0).await;
    create(store, new_run("alive", "p"), 0).await;
    create(store, new_run("done", "p"), 0).await;
    store.update_run("alive", RunUpdate { heartbeat: true, ..Default::default() }, at(1_000)).await.unwrap();
    store
        .update_run("done", RunUpdate { state: Some(RunState::Finished), ..Default::default() }, at(10))
        .await
        .unwrap();
    let crashed = store.mark_crashed_runs(at(500), at(2_000)).await.unwrap();
    assert_eq!(crashed, ["quiet"]);
    let quiet = store.get_run("quiet").await.unwrap().unwrap();
    assert_eq!((quiet.state, quiet.ended_at), (RunState::Crashed, Some(at(2_000))));
    assert!(store.mark_crashed_runs(at(500), at(3_000)).await.unwrap().is_empty(), "a second pass finds nothing");
    assert_eq!(store.get_run("alive").await.unwrap().unwrap().state, RunState::Running);
}

pub async fn a_working_store_reports_ready(store: &dyn MetadataStore) {
    store.check().await.expect("a freshly opened store is ready");
}

pub async fn project_retention_and_description_are_updated(store: &dyn MetadataStore) {
    let keep_points = Retention { runs_days: None, points_days: Some(30) };
    let created = store.create_project("p", "about", keep_points, at(0)).await.unwrap();
    assert_eq!(created.retention, keep_points);
    assert_eq!(store.get_project("p").await.unwrap(), Some(created.clone()));

    let described = ProjectUpdate { description: Some("new words".into()), retention: None };
    let updated = store.update_project("p", described).await.unwrap();
    assert_eq!((updated.description.as_str(), updated.retention), ("new words", keep_points));

    let both = Retention { runs_days: Some(365), points_days: Some(7) };
    let updated = store.update_project("p", ProjectUpdate { description: None, retention: Some(both) }).await.unwrap();
    assert_eq!((updated.description.as_str(), updated.retention), ("new words", both));
    let forever = ProjectUpdate { description: None, retention: Some(Retention::default()) };
    assert_eq!(store.update_project("p", forever).await.unwrap().retention, Retention::default());
    assert_eq!(store.list_projects().await.unwrap(), [store.get_project("p").await.unwrap().unwrap()]);

    let err = store.update_project("missing", ProjectUpdate::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub async fn rejections_are_counted_on_the_run(store: &dyn MetadataStore) {
    let run = create(store, new_run("r1", "p"), 0).await;
    assert_eq!((run.rejected_points, run.last_rejection.as_deref()), (0, None));
    store.record_rejection("r1", 40, "too many keys").await.unwrap();
    store.record_rejection("r1", 2, "key too long").await.unwrap();
    let run = store.get_run("r1").await.unwrap().unwrap();
    assert_eq!((run.rejected_points, run.last_rejection.as_deref()), (42, Some("key too long")));
    store.record_rejection("missing", 1, "no such run").await.unwrap();
    assert_eq!(store.get_run("missing").await.unwrap(), None);
}

const DAY_MS: i64 = 86_400_000;

async fn finish_at(store: &dyn MetadataStore, id: &str, offset_ms: i64) {
    let finish = RunUpdate { state: Some(RunState::Finished), ..Default::default() };
    store.update_run(id, finish, at(offset_ms)).await.unwrap();
}

async fn due(store: &dyn MetadataStore, offset_ms: i64) -> Vec<(String, RetentionAction)> {
    let mut due: Vec<_> =
        store.retention_due(at(offset_ms), 100).await.unwrap().into_iter().map(|d| (d.run_id, d.action)).collect();
    due.sort_by(|a, b| a.0.cmp(&b.0));
    due
}

pub async fn retention_finds_finished_runs_past_their_projects_limits(store: &dyn MetadataStore) {
    let retention = Retention { runs_days: Some(30), points_days: Some(7) };
    store.create_project("short", "", retention, at(0)).await.unwrap();
    for id in ["old", "recent", "live"] {
        create(store, new_run(id, "short"), 0).await;
    }
    create(store, new_run("kept", "forever"), 0).await;
    finish_at(store, "old", 0).await;
    finish_at(store, "recent", 20 * DAY_MS).await;
    finish_at(store, "kept", 0).await;
    store.update_run("live", RunUpdate { heartbeat: true, ..Default::default() }, at(0)).await.unwrap();

    assert_eq!(due(store, 7 * DAY_MS - 1).await, [], "nothing is due before its day");
    assert_eq!(due(store, 7 * DAY_MS + 1).await, [("old".into(), RetentionAction::DeletePoints)]);
    store.mark_points_expired("old", at(7 * DAY_MS + 1)).await.unwrap();
    assert_eq!(store.get_run("old").await.unwrap().unwrap().points_expired_at, Some(at(7 * DAY_MS + 1)));
    assert_eq!(due(store, 8 * DAY_MS).await, [], "expired points are not due again");

    let in_a_month = 31 * DAY_MS;
    assert_eq!(
        due(store, in_a_month).await,
        [("old".into(), RetentionAction::DeleteRun), ("recent".into(), RetentionAction::DeletePoints)],
        "a running run never expires, nor a run in a project without retention"
    );
    assert_eq!(store.retention_due(at(in_a_month), 1).await.unwrap().len(), 1, "the limit caps a pass");

    // A run resumed after its points expired and ended again is due again, from its new end.
    store.mark_points_expired("recent", at(in_a_month)).await.unwrap();
    store.create_run(new_run("recent", "short"), at(in_a_month + 1)).await.unwrap();
    assert_eq!(due(store, in_a_month + 8 * DAY_MS).await, [("old".into(), RetentionAction::DeleteRun)]);
    finish_at(store, "recent", in_a_month + 2).await;
    assert_eq!(
        due(store, in_a_month + 8 * DAY_MS).await,
        [("old".into(), RetentionAction::DeleteRun), ("recent".into(), RetentionAction::DeletePoints)]
    );

    let keep = ProjectUpdate { description: None, retention: Some(Retention::default()) };
    store.update_project("short", keep).await.unwrap();
    assert_eq!(due(store, 1000 * DAY_MS).await, [], "lifting retention stops it");
}

/// A small deterministic generator, so the oracle's runs are random-looking yet the same on every backend.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const ORACLE_QUERIES: &[&str] = &[
    "config.lr > 0.01",
    "config.lr <= 0.001 or config.lr missing",
    "config.lr != 0.1",
    "not config.lr = 0.1",
    "config.lr in (0.1, 0.001, \"high\")",
    "config.lr not in (0.1, 0.001)",
    "config.optimizer = adam",
    "config.optimizer != adam",
    "config.optimizer contains \"AD\"",
    "config.optimizer not contains ad",
    "config.optimizer ~ \"s*\"",
    "config.optimizer !~ \"?dam\"",
    "config.optimizer ~ /^(sgd|adamw)$/",
    "config.model.layers >= 12",
    "config.model.layers < 12 and config.model.width exists",
    "config.model.name < \"n\"",
    "config.amp = true",
    "config.amp = false or config.amp missing",
    "config.amp != true",
    "config.seed = null",
    "config.seed != null",
    "config.seed exists and config.seed > 2",
    "config.layers_list exists",
    "config.layers_list = 1",
    "config.layers_list != 1",
    "config.\"odd key\" = 1",
    "summary.loss < 0.5",
    "summary.loss >= 0.5",
    "summary.loss != 0.5",
    "summary.loss not in (0.25, 0.75)",
    "summary.loss missing",
    "summary.val/acc > 0.9 or summary.val/acc = \"n/a\"",
    "summary.val/acc ~ \"n*\"",
    "summary.val/acc < 0",
    "summary.best = 1 and summary.loss exists",
    "state = finished",
    "state != running",
    "state in (failed, crashed)",
    "state not in (finished)",
    "tags contains baseline",
    "tags not contains baseline",
    "tags in (wide, tiny)",
    "tags not in (wide, tiny)",
    "tags ~ \"b*\"",
    "tags !~ /^w/",
    "tags exists",
    "tags missing",
    "group = g1",
    "group != g1",
    "group missing",
    "group in (g0, g2)",
    "group not in (g0)",
    "group contains G",
    "job_type exists or group ~ \"g?\"",
    "name ~ \"run-1*\"",
    "name contains \"-2\"",
    "name > \"run-3\"",
    "id in (q05, q10, q99)",
    "notes contains \"note\"",
    "notes = \"\"",
    "created_at > \"2026-01-01T00:00:00.020Z\"",
    "created_at <= \"2026-01-01T00:00:00.010Z\" or ended_at exists",
    "ended_at missing",
    "ended_at > \"2026-01-01T00:00:00.100Z\"",
    "runtime > 0.15 and ended_at exists",
    "created_at < -1d",
    "not (config.lr > 0.01 and tags contains baseline) or state = crashed",
    "(config.optimizer = adam or summary.loss < 0.3) and not group missing",
];

/// Every query above returns, on the backend, exactly the runs the in-memory evaluator (the language's
/// reference semantics) accepts, over runs with every kind of value.
pub async fn queries_return_what_the_reference_evaluator_accepts(store: &dyn MetadataStore) {
    let mut rng = Lcg(0x5eed);
    let optimizers = [json!("adam"), json!("adamw"), json!("sgd"), json!("Adam"), json!(3)];
    let lrs = [json!(0.1), json!(0.01), json!(0.001), json!("high"), json!(null), json!(true)];
    let losses = [0.25, 0.5, 0.75, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e-9];
    let tag_sets: [&[&str]; 5] = [&[], &["baseline"], &["wide"], &["baseline", "tiny"], &["wide", "big"]];
    let mut ids = Vec::new();
    for i in 0..40u64 {
        let id = format!("q{i:02}");
        let mut run = new_run(&id, "oracle");
        run.name = format!("run-{}", rng.below(40));
        run.group = [None, Some("g0"), Some("g1"), Some("g2")][rng.below(4) as usize].map(String::from);
        run.job_type = (rng.below(5) == 0).then(|| "train".to_owned());
        run.notes = if rng.below(3) == 0 { "a Note here".into() } else { String::new() };
        run.tags = rng.pick(&tag_sets).iter().map(|t| t.to_string()).collect();
        let mut config = JsonMap::new();
        if rng.below(6) != 0 {
            config.insert("lr".into(), rng.pick(&lrs).clone());
        }
        config.insert("optimizer".into(), rng.pick(&optimizers).clone());
        let mut model =
            json!({"layers": rng.below(24), "name": format!("{}", ["mlp", "resnet", "vit"][rng.below(3) as usize])});
        if rng.below(2) == 0 {
            model["width"] = json!(rng.below(1024));
        }
        config.insert("model".into(), model);
        if rng.below(2) == 0 {
            config.insert("amp".into(), json!(rng.below(2) == 0));
        }
        if rng.below(2) == 0 {
            config.insert("seed".into(), if rng.below(3) == 0 { json!(null) } else { json!(rng.below(5)) });
        }
        if rng.below(4) == 0 {
            config.insert("layers_list".into(), json!([1, 2]));
        }
        if rng.below(4) == 0 {
            config.insert("odd key".into(), json!(rng.below(2)));
        }
        run.config = config;
        create(store, run, i as i64).await;
        let mut update = RunUpdate::default();
        if rng.below(5) != 0 {
            update.summary_metrics.push(SummaryMetric { key: "loss".into(), step: 10, value: *rng.pick(&losses) });
        }
        match rng.below(4) {
            0 => update.summary_metrics.push(SummaryMetric {
                key: "val/acc".into(),
                step: 3,
                value: rng.below(100) as f64 / 100.0,
            }),
            1 => {
                update.summary_set.insert("val/acc".into(), json!("n/a"));
            }
            2 => update.summary_metrics.push(SummaryMetric { key: "val/acc".into(), step: 1, value: -1.0 }),
            _ => {}
        }
        if rng.below(3) == 0 {
            update.summary_set.insert("best".into(), json!(1));
        }
        update.state =
            [None, Some(RunState::Finished), Some(RunState::Failed), Some(RunState::Crashed)][rng.below(4) as usize];
        store.update_run(&id, update, at(100 + i as i64 * 5)).await.unwrap();
        if rng.below(4) == 0 {
            // A later config merge must re-index the nested keys it replaces.
            let merge = json!({"model": {"layers": 48}}).as_object().unwrap().clone();
            store.update_run(&id, RunUpdate { config_merge: merge, ..Default::default() }, at(300)).await.unwrap();
        }
        if rng.below(5) == 0 {
            // An explicit value set and then cleared falls back to the metric.
            let set = json!({"loss": 0.5}).as_object().unwrap().clone();
            store.update_run(&id, RunUpdate { summary_set: set, ..Default::default() }, at(301)).await.unwrap();
            let clear = json!({"loss": null}).as_object().unwrap().clone();
            store.update_run(&id, RunUpdate { summary_set: clear, ..Default::default() }, at(302)).await.unwrap();
        }
        ids.push(id);
    }
    create(store, new_run("elsewhere", "other-project"), 0).await;
    let mut runs = Vec::new();
    for id in &ids {
        runs.push(store.get_run(id).await.unwrap().unwrap());
    }
    let now_ms = at(1_000).timestamp_millis();
    let orders = [
        "created_at",
        "-summary.loss,created_at",
        "config.lr",
        "-config.optimizer,summary.val/acc",
        "group,-name",
        "-ended_at,state",
        "config.model.layers,-config.seed,job_type",
        "-summary.best,notes,-id",
    ];
    for (index, text) in ORACLE_QUERIES.iter().enumerate() {
        let expr = trackstack_domain::query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).unwrap();
        let mut expected: Vec<String> = runs
            .iter()
            .filter(|run| trackstack_domain::query::RunView::new(run, now_ms).matches(&expr))
            .map(|run| run.id.clone())
            .collect();
        let order_text = orders[index % orders.len()];
        let order = trackstack_domain::query::parse_order(order_text).unwrap();
        let by_id: std::collections::HashMap<&str, &Run> = runs.iter().map(|r| (r.id.as_str(), r)).collect();
        expected.sort_by(|a, b| reference_order(&order, by_id[a.as_str()], by_id[b.as_str()]));
        let query = RunListQuery {
            project: "oracle".into(),
            filter: Some(RunFilter { expr, now_ms }),
            order,
            limit: 7,
            ..Default::default()
        };
        let got = list_all(store, query).await;
        assert_eq!(got, expected, "`{text}` sorted by `{order_text}`");
    }
}

/// The documented order: per component, values before missing ones, ascending or descending; then the id in the
/// first key's direction.
fn reference_order(order: &[trackstack_domain::query::SortKey], a: &Run, b: &Run) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for key in order {
        for (x, y) in sort_values(key, a).into_iter().zip(sort_values(key, b)) {
            let ordering = match (x, y) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => {
                    let ordering = match (x, y) {
                        (SortValue::Int(x), SortValue::Int(y)) => x.cmp(&y),
                        (SortValue::Real(x), SortValue::Real(y)) => x.partial_cmp(&y).unwrap(),
                        (SortValue::Text(x), SortValue::Text(y)) => x.cmp(&y),
                        other => panic!("mixed components {other:?}"),
                    };
                    if key.descending {
                        ordering.reverse()
                    } else {
                        ordering
                    }
                }
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
    }
    let ordering = a.id.cmp(&b.id);
    if order.first().is_some_and(|k| k.descending) {
        ordering.reverse()
    } else {
        ordering
    }
}

pub async fn field_discovery_counts_runs_per_field_and_type(store: &dyn MetadataStore) {
    let mut first = new_run("r1", "p");
    first.config = json!({"lr": 0.1, "model": {"layers": 4}, "tags": [1, 2]}).as_object().unwrap().clone();
    create(store, first, 0).await;
    let mut second = new_run("r2", "p");
    second.config = json!({"lr": "high", "model": {"layers": 8, "width": 64}}).as_object().unwrap().clone();
    create(store, second, 1).await;
    create(store, new_run("elsewhere", "other"), 2).await;
    let metric = |key: &str, value: f64| SummaryMetric { key: key.into(), step: 1, value };
    let update =
        RunUpdate { summary_metrics: vec![metric("val/acc", 0.9), metric("loss", f64::NAN)], ..Default::default() };
    store.update_run("r1", update.clone(), at(5)).await.unwrap();
    store.update_run("r1", update, at(6)).await.unwrap();
    let explicit =
        RunUpdate { summary_set: json!({"val/acc": "n/a"}).as_object().unwrap().clone(), ..Default::default() };
    store.update_run("r2", explicit, at(7)).await.unwrap();

    let fields = store.list_fields("p", None, 100).await.unwrap();
    type Counts = Vec<(String, u64)>;
    let view: Vec<(String, u64, Counts)> =
        fields.iter().map(|f| (f.field.clone(), f.runs, f.types.clone().into_iter().collect())).collect();
    let types = |pairs: &[(&str, u64)]| pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect::<Vec<_>>();
    assert_eq!(
        view,
        [
            ("config.lr".to_string(), 2, types(&[("number", 1), ("string", 1)])),
            ("config.model.layers".into(), 2, types(&[("number", 2)])),
            ("config.model.width".into(), 1, types(&[("number", 1)])),
            ("config.tags".into(), 1, types(&[("list", 1)])),
            ("summary.loss".into(), 1, types(&[("number", 1)])),
            ("summary.val/acc".into(), 2, types(&[("number", 1), ("string", 1)])),
        ]
    );
    let searched: Vec<String> =
        store.list_fields("p", Some("MODEL"), 100).await.unwrap().into_iter().map(|f| f.field).collect();
    assert_eq!(searched, ["config.model.layers", "config.model.width"]);
    assert_eq!(store.list_fields("p", None, 2).await.unwrap().len(), 2, "the limit counts fields");

    // Changing a value's type, clearing an explicit value and deleting a run keep the counts exact.
    let merge =
        RunUpdate { config_merge: json!({"lr": 0.5, "model": 3}).as_object().unwrap().clone(), ..Default::default() };
    store.update_run("r2", merge, at(8)).await.unwrap();
    let clear = RunUpdate { summary_set: json!({"val/acc": null}).as_object().unwrap().clone(), ..Default::default() };
    store.update_run("r2", clear, at(9)).await.unwrap();
    store.delete_run("r1").await.unwrap();
    let view: Vec<(String, u64)> =
        store.list_fields("p", None, 100).await.unwrap().into_iter().map(|f| (f.field, f.runs)).collect();
    assert_eq!(view, [("config.lr".to_string(), 1), ("config.model".into(), 1)]);
    assert!(store.list_fields("nothing-here", None, 100).await.unwrap().is_empty());
}

pub async fn runs_group_with_statistics_of_numeric_columns(store: &dyn MetadataStore) {
    // (optimizer, group, accuracy): adam has three seeds, sgd two, one run has no optimizer, one a boolean.
    let runs = [
        (json!("adam"), Some("g1"), Some(0.8)),
        (json!("adam"), Some("g1"), Some(0.9)),
        (json!("adam"), None, Some(1.0)),
        (json!("sgd"), Some("g1"), Some(0.5)),
        (json!("sgd"), Some("g2"), None),
        (json!(true), None, Some(f64::NAN)),
        (json!(null), None, Some(0.1)),
    ];
    for (i, (optimizer, group, accuracy)) in runs.iter().enumerate() {
        let mut run = new_run(&format!("r{i}"), "p");
        run.config = json!({"optimizer": optimizer, "layers": i}).as_object().unwrap().clone();
        if i == 6 {
            run.config.remove("optimizer");
        }
        run.group = group.map(String::from);
        create(store, run, i as i64).await;
        if let Some(value) = accuracy {
            let metric = SummaryMetric { key: "acc".into(), step: 1, value: *value };
            store
                .update_run(&format!("r{i}"), RunUpdate { summary_metrics: vec![metric], ..Default::default() }, at(9))
                .await
                .unwrap();
        }
    }
    create(store, new_run("elsewhere", "other"), 0).await;
    let all = RunListQuery { project: "p".into(), limit: 10, ..Default::default() };
    let optimizer = [Field::Config("optimizer".into())];
    let columns = [Field::Summary("acc".into()), Field::Config("layers".into())];
    let grouped = store.group_runs(&all, &optimizer, &columns, 100).await.unwrap();
    assert_eq!(grouped.group_by, ["config.optimizer"]);
    assert!(!grouped.truncated);
    let keys: Vec<(serde_json::Value, u64)> = grouped.groups.iter().map(|g| (g.key[0].clone(), g.count)).collect();
    assert_eq!(keys, [(json!("adam"), 3), (json!("sgd"), 2), (json!(true), 1), (json!(null), 1)]);
    let adam = &grouped.groups[0].columns["summary.acc"];
    assert_eq!((adam.count, adam.min, adam.max, adam.median), (3, Some(0.8), Some(1.0), Some(0.9)));
    assert!((adam.mean.unwrap() - 0.9).abs() < 1e-12 && (adam.std.unwrap() - 0.1).abs() < 1e-12, "{adam:?}");
    let sgd = &grouped.groups[1].columns["summary.acc"];
    assert_eq!((sgd.count, sgd.mean, sgd.std, sgd.median), (1, Some(0.5), None, Some(0.5)), "one value: no std");
    assert_eq!(grouped.groups[1].columns["config.layers"].median, Some(3.5), "even count: mean of the middle two");
    assert_eq!(grouped.groups[2].columns["summary.acc"], ColumnStats::default(), "NaN is left out");

    let two = [Field::Config("optimizer".into()), Field::Group];
    let filtered = RunListQuery {
        filter: Some(RunFilter {
            expr: trackstack_domain::query::parse("config.layers < 5").unwrap().unwrap(),
            now_ms: at(10).timestamp_millis(),
        }),
        ..all.clone()
    };
    let grouped = store.group_runs(&filtered, &two, &[], 2).await.unwrap();
    let keys: Vec<(Vec<serde_json::Value>, u64)> = grouped.groups.iter().map(|g| (g.key.clone(), g.count)).collect();
    assert_eq!(keys, [(vec![json!("adam"), json!("g1")], 2), (vec![json!("adam"), json!(null)], 1)]);
    assert!(grouped.truncated, "sgd/g1 and sgd/g2 are beyond the limit");

    let error = store.group_runs(&all, &[Field::Runtime], &[], 10).await.unwrap_err();
    assert!(matches!(error, StoreError::Invalid { .. }), "{error:?}");
    let error = store.group_runs(&all, &optimizer, &[Field::Name], 10).await.unwrap_err();
    assert!(matches!(error, StoreError::Invalid { .. }), "{error:?}");
}
