use reqwest::StatusCode;
use serde_json::json;
use trackstack_testkit::{expect_error, expect_json, scenario, TestServer};

scenario! {
    async fn projects_are_created_listed_and_fetched(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |_| {}).await else { return };
        let created = expect_json(
            server.post_json("/api/v1/projects", &json!({"name": "vision", "description": "cats"})).await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(created["name"], "vision");
        expect_error(
            server.post_json("/api/v1/projects", &json!({"name": "vision"})).await,
            StatusCode::CONFLICT,
            "already_exists",
            None,
        )
        .await;
        expect_error(
            server.post_json("/api/v1/projects", &json!({"name": "has space"})).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("name"),
        )
        .await;
        let listed = server.get_ok("/api/v1/projects").await;
        assert_eq!(listed["projects"][0]["description"], "cats");
        assert_eq!(server.get_ok("/api/v1/projects/vision").await["name"], "vision");
        expect_error(server.get("/api/v1/projects/nope").await, StatusCode::NOT_FOUND, "not_found", None).await;
    }
}

scenario! {
    async fn project_retention_is_set_changed_and_validated(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |_| {}).await else { return };
        let body = json!({"name": "vision", "retention": {"points_days": 30}});
        let created = expect_json(server.post_json("/api/v1/projects", &body).await, StatusCode::CREATED).await;
        assert_eq!(created["retention"], json!({"runs_days": null, "points_days": 30}));
        let patched = expect_json(
            server.patch_json("/api/v1/projects/vision", &json!({"retention": {"runs_days": 365, "points_days": 7}})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(patched["retention"], json!({"runs_days": 365, "points_days": 7}));
        let described =
            expect_json(server.patch_json("/api/v1/projects/vision", &json!({"description": "cats"})).await, StatusCode::OK)
                .await;
        assert_eq!((described["description"].as_str(), described["retention"]["runs_days"].as_u64()), (Some("cats"), Some(365)));
        for (retention, field) in [
            (json!({"runs_days": 0}), "retention.runs_days"),
            (json!({"points_days": 40_000}), "retention.points_days"),
        ] {
            let error = expect_error(
                server.patch_json("/api/v1/projects/vision", &json!({"retention": retention})).await,
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                Some(field),
            )
            .await;
            assert!(error["error"]["message"].as_str().unwrap().contains("between 1 and 36500"), "{error}");
        }
        expect_error(
            server.patch_json("/api/v1/projects/vision", &json!({"retention": {"days": 3}})).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            None,
        )
        .await;
        assert_eq!(server.get_ok("/api/v1/projects/vision").await["retention"]["points_days"], 7, "refusals changed nothing");
        expect_error(
            server.patch_json("/api/v1/projects/nope", &json!({"description": "x"})).await,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        )
        .await;
    }
}

scenario! {
    async fn run_creation_is_idempotent_and_ids_are_unique_across_projects(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |_| {}).await else { return };
        let body = json!({"id": "abc123", "name": "first", "config": {"lr": 0.1}, "tags": ["x", "x", "y"], "group": "g"});
        let created = expect_json(server.post_json("/api/v1/projects/p/runs", &body).await, StatusCode::CREATED).await;
        assert_eq!((created["id"].as_str(), created["state"].as_str()), (Some("abc123"), Some("running")));
        assert_eq!(created["tags"], json!(["x", "y"]));
        let again = expect_json(server.post_json("/api/v1/projects/p/runs", &body).await, StatusCode::OK).await;
        assert_eq!(again, created);
        let strict = json!({"id": "abc123", "if_exists": "error"});
        expect_error(
            server.post_json("/api/v1/projects/p/runs", &strict).await,
            StatusCode::CONFLICT,
            "already_exists",
            Some("id"),
        )
        .await;
        expect_error(
            server.post_json("/api/v1/projects/q/runs", &json!({"id": "abc123"})).await,
            StatusCode::CONFLICT,
            "already_exists",
            None,
        )
        .await;
        let generated =
            expect_json(server.post_json("/api/v1/projects/p/runs", &json!({})).await, StatusCode::CREATED).await;
        let id = generated["id"].as_str().unwrap();
        assert!(id.len() == 8 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{id}");
        assert_eq!(generated["name"], id, "the name defaults to the id");
    }
}

scenario! {
    async fn runs_update_finish_resume_and_delete(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |_| {}).await else { return };
        server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1", "config": {"a": 1, "b": {"c": 2}}})).await;
        let patch = json!({"name": "renamed", "notes": "n", "tags": ["t"], "config": {"b": 3}, "summary": {"best": 0.9}, "group": "g"});
        let run = expect_json(server.patch_json("/api/v1/runs/r1", &patch).await, StatusCode::OK).await;
        assert_eq!(run["config"], json!({"a": 1, "b": 3}));
        assert_eq!((run["summary"]["best"].as_f64(), run["group"].as_str()), (Some(0.9), Some("g")));
        let cleared = expect_json(server.patch_json("/api/v1/runs/r1", &json!({"group": ""})).await, StatusCode::OK).await;
        assert!(cleared["group"].is_null());

        let finished =
            expect_json(server.post_json("/api/v1/runs/r1/finish", &json!({"exit_code": 2})).await, StatusCode::OK).await;
        assert_eq!((finished["state"].as_str(), finished["exit_code"].as_i64()), (Some("failed"), Some(2)));
        assert!(finished["ended_at"].is_string());
        let resumed =
            expect_json(server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1"})).await, StatusCode::OK).await;
        assert_eq!((resumed["state"].as_str(), resumed["ended_at"].is_null()), (Some("running"), true));
        expect_error(
            server.post_json("/api/v1/runs/r1/finish", &json!({"state": "running"})).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("state"),
        )
        .await;

        let deleted = server.client.delete(server.url("/api/v1/runs/r1")).send().await.unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        expect_error(server.get("/api/v1/runs/r1").await, StatusCode::NOT_FOUND, "not_found", None).await;
        let again = server.client.delete(server.url("/api/v1/runs/r1")).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_FOUND);
    }
}

scenario! {
    async fn run_lists_filter_sort_and_page_through_everything(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |_| {}).await else { return };
        for i in 0..25 {
            let tags = if i % 2 == 0 { json!(["even"]) } else { json!([]) };
            let body = json!({"id": format!("run-{i:02}"), "name": format!("Model-{}", i % 4), "tags": tags});
            expect_json(server.post_json("/api/v1/projects/p/runs", &body).await, StatusCode::CREATED).await;
        }
        server.post_json("/api/v1/runs/run-03/finish", &json!({})).await;
        for sort in ["-created_at", "created_at", "name", "-name"] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/api/v1/projects/p/runs?limit=4&sort={sort}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let page = server.get_ok(&path).await;
                seen.extend(page["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!((seen.len(), unique.len()), (25, 25), "{sort}");
        }
        let even = server.get_ok("/api/v1/projects/p/runs?tag=even&limit=1000").await;
        assert_eq!(even["runs"].as_array().unwrap().len(), 13);
        let finished = server.get_ok("/api/v1/projects/p/runs?state=finished").await;
        assert_eq!(finished["runs"][0]["id"], "run-03");
        let named = server.get_ok("/api/v1/projects/p/runs?name=model-1").await;
        assert_eq!(named["runs"].as_array().unwrap().len(), 6);
        expect_error(
            server.get("/api/v1/projects/p/runs?cursor=zz").await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("cursor"),
        )
        .await;
        expect_error(
            server.get("/api/v1/projects/p/runs?sort=size").await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("sort"),
        )
        .await;
        expect_error(
            server.get("/api/v1/projects/p/runs?limit=0").await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("limit"),
        )
        .await;
        expect_error(
            server.get("/api/v1/projects/p/runs?state=sleeping").await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("state"),
        )
        .await;
    }
}

scenario! {
    async fn runs_are_queried_with_the_query_language(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |_| {}).await else { return };
        for (i, (optimizer, tags)) in [("adam", vec!["base"]), ("sgd", vec![]), ("adam", vec!["wide"]), ("adamw", vec!["base"])]
            .into_iter()
            .enumerate()
        {
            let body = json!({"id": format!("r{i}"), "config": {"optimizer": optimizer, "model": {"layers": i * 6}}, "tags": tags});
            expect_json(server.post_json("/api/v1/projects/q/runs", &body).await, StatusCode::CREATED).await;
            let batch = json!({"run_id": format!("r{i}"), "metrics": [{"key": "val/acc", "step": 1, "value": 0.5 + i as f64 / 10.0}]});
            expect_json(server.post_json("/api/v1/ingest", &batch).await, StatusCode::OK).await;
        }
        let ids = |page: &serde_json::Value| -> Vec<String> {
            page["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
        };
        let query = |filter: &str| json!({"filter": filter, "sort": "created_at"});
        let page = expect_json(
            server.post_json("/api/v1/projects/q/runs/query", &query("summary.val/acc > 0.55 and config.optimizer ~ \"adam*\"")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(ids(&page), ["r2", "r3"]);
        let page = expect_json(
            server.post_json("/api/v1/projects/q/runs/query", &query("config.model.layers >= 6 and not tags contains base")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(ids(&page), ["r1", "r2"]);
        // The same filter on the GET listing, page by page.
        let first = server.get_ok("/api/v1/projects/q/runs?sort=created_at&limit=1&filter=config.optimizer%20!%3D%20sgd").await;
        assert_eq!(ids(&first), ["r0"]);
        let cursor = first["next_cursor"].as_str().unwrap();
        let rest = server.get_ok(&format!("/api/v1/projects/q/runs?sort=created_at&limit=5&filter=config.optimizer%20!%3D%20sgd&cursor={cursor}")).await;
        assert_eq!(ids(&rest), ["r2", "r3"]);
        let everything = expect_json(server.post_json("/api/v1/projects/q/runs/query", &json!({})).await, StatusCode::OK).await;
        assert_eq!(ids(&everything).len(), 4);

        let error = expect_error(
            server.post_json("/api/v1/projects/q/runs/query", &query("summary.val/acc > )")).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("filter"),
        )
        .await;
        assert!(error["error"]["message"].as_str().unwrap().starts_with("at position 18: expected a number"), "{error}");
        let grouped = expect_json(
            server
                .post_json(
                    "/api/v1/projects/q/runs/query",
                    &json!({"filter": "config.model.layers < 18", "group_by": ["config.optimizer"], "columns": ["summary.val/acc"]}),
                )
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(grouped["group_by"], json!(["config.optimizer"]));
        assert_eq!(grouped["groups"][0]["key"], json!(["adam"]));
        assert_eq!(grouped["groups"][0]["count"], 2);
        let adam = &grouped["groups"][0]["columns"]["summary.val/acc"];
        assert_eq!((adam["count"].as_u64(), adam["min"].as_f64(), adam["max"].as_f64()), (Some(2), Some(0.5), Some(0.7)));
        assert!((adam["mean"].as_f64().unwrap() - 0.6).abs() < 1e-9, "{adam}");
        assert_eq!(grouped["groups"][1]["key"], json!(["sgd"]));
        let narrowed = expect_json(
            server.post_json("/api/v1/projects/q/runs/query", &json!({"columns": ["config.model.layers"], "sort": "created_at", "limit": 1})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(narrowed["runs"][0]["config"], json!({"model.layers": 0}));
        assert_eq!(narrowed["runs"][0]["summary"], json!({}));
        expect_error(
            server.post_json("/api/v1/projects/q/runs/query", &json!({"group_by": ["runtime"]})).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("group_by"),
        )
        .await;
        expect_error(
            server.post_json("/api/v1/projects/q/runs/query", &json!({"group_by": ["config."]})).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("group_by[0]"),
        )
        .await;
        expect_error(
            server.post_json("/api/v1/projects/q/runs/query", &json!({"filter": "", "having": 1})).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            None,
        )
        .await;
        let fields = server.get_ok("/api/v1/projects/q/fields").await;
        let names: Vec<&str> = fields["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
        assert_eq!(names, ["config.model.layers", "config.optimizer", "summary.val/acc"]);
        assert_eq!(fields["fields"][1]["runs"], 4);
        assert_eq!(fields["fields"][1]["types"]["string"], 4);
        let searched = server.get_ok("/api/v1/projects/q/fields?search=OPT&limit=5").await;
        assert_eq!(searched["fields"].as_array().map(Vec::len), Some(1));
        expect_error(server.get("/api/v1/projects/q/fields?limit=0").await, StatusCode::BAD_REQUEST, "invalid_argument", Some("limit"))
            .await;
        // Bulk operations: a dry run counts, tagging skips runs that have the tag, deleting removes points too.
        let bulk = |body: serde_json::Value| {
            let server = &server;
            async move { server.post_json("/api/v1/projects/q/runs/bulk", &body).await }
        };
        let counted = expect_json(bulk(json!({"filter": "config.optimizer ~ \"adam*\"", "action": "tag", "tags": ["base"], "dry_run": true})).await, StatusCode::OK).await;
        assert_eq!(counted, json!({"matched": 3, "changed": 0, "dry_run": true}));
        let tagged = expect_json(bulk(json!({"filter": "config.optimizer ~ \"adam*\"", "action": "tag", "tags": ["base"]})).await, StatusCode::OK).await;
        assert_eq!(tagged, json!({"matched": 3, "changed": 1, "dry_run": false}), "r0 and r3 had the tag");
        let untagged = expect_json(bulk(json!({"filter": "tags contains wide", "action": "untag", "tags": ["wide"]})).await, StatusCode::OK).await;
        assert_eq!(untagged["changed"], 1);
        assert_eq!(server.get_ok("/api/v1/runs/r2").await["tags"], json!(["base"]));
        let deleted = expect_json(bulk(json!({"filter": "config.optimizer = sgd", "action": "delete"})).await, StatusCode::OK).await;
        assert_eq!(deleted["changed"], 1);
        expect_error(server.get("/api/v1/runs/r1").await, StatusCode::NOT_FOUND, "not_found", None).await;
        expect_error(server.get("/api/v1/runs/r1/metrics").await, StatusCode::NOT_FOUND, "not_found", None).await;
        expect_error(bulk(json!({"filter": "", "action": "delete"})).await, StatusCode::BAD_REQUEST, "invalid_argument", Some("filter")).await;
        expect_error(bulk(json!({"filter": "name exists", "action": "delete"})).await, StatusCode::BAD_REQUEST, "invalid_argument", Some("filter")).await;
        expect_error(bulk(json!({"filter": "created_at > 0", "action": "tag"})).await, StatusCode::BAD_REQUEST, "invalid_argument", Some("tags")).await;
        expect_error(bulk(json!({"filter": "created_at > 0", "action": "move"})).await, StatusCode::BAD_REQUEST, "invalid_argument", None).await;
        assert_eq!(server.get_ok("/api/v1/projects/q/fields?search=optimizer").await["fields"][0]["runs"], 3, "discovery follows deletes");
        let hostile = query("name = \"x'; DROP TABLE runs; --\" or config.\"a'--\" exists");
        let page = expect_json(server.post_json("/api/v1/projects/q/runs/query", &hostile).await, StatusCode::OK).await;
        assert!(ids(&page).is_empty());
        assert_eq!(ids(&expect_json(server.post_json("/api/v1/projects/q/runs/query", &json!({})).await, StatusCode::OK).await).len(), 3, "injection attempts are values");
    }
}
