//! Jobs survive their worker: a SIGKILL mid-render publishes nothing and loses nothing, a
//! SIGTERM mid-render hands the job to the next process, and a second worker on the same data
//! dir serves the status of a job the first one renders.

use std::time::Duration;

use crate::util::*;

fn wait_state(srv: &TestServer, id: &str, want: &[&str], limit: Duration) -> String {
    wait_for(limit, &format!("job {id} to reach {want:?}"), || {
        let mut c = srv.connect();
        let json = job_json(&mut c, id);
        let state = json_field(&json, "state")?;
        want.contains(&state.as_str()).then_some(json)
    })
}

#[test]
fn a_worker_killed_mid_render_publishes_nothing_and_the_job_is_rendered_after_restart() {
    let mut srv = TestServer::start(&BIG_FLAGS);
    let id = srv.connect().submit("Survivor", BIG_ROWS);
    wait_for(
        Duration::from_secs(30),
        "the render to make progress",
        || {
            let json = job_json(&mut srv.connect(), &id);
            let done: u32 = json_field(&json, "pages_done")?.parse().ok()?;
            (done > 0).then_some(())
        },
    );
    srv.kill();
    let pdf = srv.data.join("files").join(format!("{id}.pdf"));
    assert!(!pdf.exists(), "a half-rendered PDF must never be published");
    srv.spawn();
    // The restarted worker's janitor finds the orphan (its claim is free) and renders it.
    let json = wait_state(&srv, &id, &["done", "failed"], Duration::from_secs(180));
    assert_eq!(
        json_field(&json, "state").as_deref(),
        Some("done"),
        "{json}\n{}",
        srv.log()
    );
    crate::nginx::check_pdf(&pdf, "Survivor", 1_000_000);
    let leftovers: Vec<_> = std::fs::read_dir(srv.data.join("files"))
        .expect("files dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

#[test]
fn sigterm_mid_render_hands_the_job_to_the_next_process() {
    let mut srv = TestServer::start(&[&BIG_FLAGS[..], &["--shutdown-grace-secs", "1"]].concat());
    let id = srv.connect().submit("Handed over", BIG_ROWS);
    wait_state(&srv, &id, &["running"], Duration::from_secs(30));
    let status = srv.terminate().expect("exit status");
    assert!(status.success(), "clean exit: {status}\n{}", srv.log());
    let record =
        std::fs::read_to_string(srv.data.join("jobs").join(format!("{id}.json"))).expect("record");
    let compact: String = record.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        compact.contains("\"state\":\"queued\"") || compact.contains("\"state\":\"done\""),
        "a render stopped by shutdown goes back to the queue, not to failed:\n{record}"
    );
    srv.spawn();
    let json = wait_state(&srv, &id, &["done", "failed"], Duration::from_secs(180));
    assert_eq!(
        json_field(&json, "state").as_deref(),
        Some("done"),
        "{json}"
    );
}

#[test]
fn any_worker_on_the_data_dir_answers_the_status_of_a_job_another_renders() {
    let a = TestServer::start(&BIG_FLAGS);
    let b_args = ["--data-dir", a.data.to_str().expect("utf-8 path")];
    let b = TestServer::start(&b_args);
    let id = a.connect().submit("Shared", BIG_ROWS);
    // B did not take the request, yet sees the job and its progress from the record.
    let json = wait_for(
        Duration::from_secs(60),
        "progress visible from the other worker",
        || {
            let json = job_json(&mut b.connect(), &id);
            let done: u32 = json_field(&json, "pages_done")?.parse().ok()?;
            let state = json_field(&json, "state")?;
            (done > 0 || state == "done").then_some(json)
        },
    );
    assert!(json.contains(&id), "{json}");
    wait_state(&b, &id, &["done"], Duration::from_secs(180));
}
