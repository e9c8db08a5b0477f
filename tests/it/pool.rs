//! Work is spread over the pool, and the rule "killed its worker too often, failed" blames the
//! job that does the killing: two workers share queued work, random SIGKILLs fail no innocent
//! job, and a job that is running at every death ends failed while its neighbours end done.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::*;

/// About a second of rendering per job on the test machine.
const ROWS: &str = "200000";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Every job record in the data dir, by id (a record being replaced is skipped this time).
fn records(data: &std::path::Path) -> HashMap<String, serde_json::Value> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(data.join("jobs")) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            out.insert(id.to_owned(), value);
        }
    }
    out
}

fn state(record: &serde_json::Value) -> &str {
    record["state"].as_str().unwrap_or("")
}

/// Jobs whose record says running with a render started at or after `since_ms` (older ones
/// are the stale records of a killed worker).
fn running_since(data: &std::path::Path, since_ms: u64) -> Vec<String> {
    records(data)
        .into_iter()
        .filter(|(_, r)| state(r) == "running" && r["started_ms"].as_u64().unwrap_or(0) >= since_ms)
        .map(|(id, _)| id)
        .collect()
}

fn wait_all_final(
    data: &std::path::Path,
    ids: &[String],
    limit: Duration,
) -> HashMap<String, serde_json::Value> {
    wait_for(limit, "every job to end", || {
        let all = records(data);
        ids.iter()
            .all(|id| {
                all.get(id)
                    .is_some_and(|r| r["state"] == "done" || r["state"] == "failed")
            })
            .then_some(all)
    })
}

fn started_in(log: &str, id: &str) -> bool {
    log.contains(&format!("job {id}: started"))
}

#[test]
fn two_one_slot_workers_both_render_jobs_submitted_to_one_of_them() {
    let slots = ["--render-slots", "1"];
    let a = TestServer::start(&[&BIG_FLAGS[..], &slots].concat());
    let data = a.data.to_str().expect("utf-8 path").to_owned();
    let b = TestServer::start(&[&BIG_FLAGS[..], &slots, &["--data-dir", &data]].concat());
    let ids: Vec<String> = (0..20)
        .map(|i| a.connect().submit(&format!("Pool {i}"), ROWS))
        .collect();
    let all = wait_all_final(&a.data, &ids, Duration::from_secs(120));
    let (log_a, log_b) = (a.log(), b.log());
    let by_a = ids.iter().filter(|id| started_in(&log_a, id)).count();
    let by_b = ids.iter().filter(|id| started_in(&log_b, id)).count();
    eprintln!("pool: 20 jobs submitted to A; A rendered {by_a}, B rendered {by_b}");
    for id in &ids {
        assert_eq!(all[id]["state"], "done", "{id}: {}", all[id]);
        assert_eq!(all[id]["attempts"], 1, "rendered once: {}", all[id]);
    }
    assert!(
        by_a > 0 && by_b > 0,
        "A {by_a}, B {by_b}\nA:\n{log_a}\nB:\n{log_b}"
    );
    assert_eq!(by_a + by_b, ids.len(), "each job started exactly once");
}

#[test]
fn random_kills_of_a_busy_worker_fail_no_innocent_job() {
    let started = Instant::now();
    let mut srv = TestServer::start(&[&BIG_FLAGS[..], &["--render-slots", "3"]].concat());
    let ids: Vec<String> = (0..10)
        .map(|i| srv.connect().submit(&format!("Chaos {i}"), ROWS))
        .collect();
    let mut since = 0;
    let mut kills = 0;
    let mut seed = now_ms();
    while kills < 4 && started.elapsed() < Duration::from_secs(25) {
        // Kill while several renders run at once: any of them could be the cause.
        let several = wait_for(Duration::from_secs(20), "several renders at once", || {
            let running = running_since(&srv.data, since);
            let finished = records(&srv.data)
                .values()
                .filter(|r| state(r) == "done")
                .count();
            (running.len() >= 2 || finished == ids.len()).then_some(running.len() >= 2)
        });
        if !several {
            break;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(100 + (seed >> 33) % 400));
        if running_since(&srv.data, since).len() < 2 {
            continue;
        }
        srv.kill();
        kills += 1;
        since = now_ms();
        srv.spawn();
    }
    let all = wait_all_final(&srv.data, &ids, Duration::from_secs(90));
    let failed: Vec<&serde_json::Value> = ids
        .iter()
        .map(|id| &all[id])
        .filter(|r| r["state"] != "done")
        .collect();
    let bystander: u64 = ids
        .iter()
        .map(|id| all[id]["bystander_crashes"].as_u64().unwrap_or(0))
        .sum();
    let blamed: u64 = ids
        .iter()
        .map(|id| all[id]["crashes"].as_u64().unwrap_or(0))
        .sum();
    eprintln!(
        "chaos: {} jobs, {kills} SIGKILLs, {bystander} deaths given back as bystander, \
         {blamed} counted against a job, {} innocent jobs failed, {:.1} s",
        ids.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= 2, "the run killed the worker only {kills} times");
    assert!(
        failed.is_empty(),
        "innocent jobs failed: {failed:?}\n{}",
        srv.log()
    );
}

#[test]
fn a_job_running_at_every_death_fails_while_its_neighbours_end_done() {
    let started = Instant::now();
    let mut srv = TestServer::start(&[&BIG_FLAGS[..], &["--render-slots", "2"]].concat());
    let poison = srv.connect().submit("Poison", ROWS);
    let neighbours: Vec<String> = (0..3)
        .map(|i| srv.connect().submit(&format!("Neighbour {i}"), ROWS))
        .collect();
    let mut since = 0;
    let mut kills = 0;
    loop {
        // Whenever the poison job renders, its worker dies.
        let over = wait_for(
            Duration::from_secs(30),
            "the poison job to run or end",
            || {
                let all = records(&srv.data);
                let record = all.get(&poison)?;
                match state(record) {
                    "failed" | "done" => Some(true),
                    "running" if record["started_ms"].as_u64().unwrap_or(0) >= since => Some(false),
                    _ => None,
                }
            },
        );
        if over {
            break;
        }
        srv.kill();
        kills += 1;
        since = now_ms();
        assert!(
            kills <= 14,
            "still not given up after {kills} deaths\n{}",
            srv.log()
        );
        srv.spawn();
    }
    let mut ids = neighbours.clone();
    ids.push(poison.clone());
    let all = wait_all_final(&srv.data, &ids, Duration::from_secs(60));
    eprintln!(
        "poison: failed after {kills} deaths ({} counted against it, {} beside others), {:.1} s",
        all[&poison]["crashes"],
        all[&poison]["bystander_crashes"],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(all[&poison]["state"], "failed", "{}", all[&poison]);
    let error = all[&poison]["error"].as_str().unwrap_or("");
    assert!(error.contains("failed repeatedly"), "{error}");
    for id in &neighbours {
        assert_eq!(all[id]["state"], "done", "{}\n{}", all[id], srv.log());
    }
}
