//! What `serve` tells systemd under `Type=notify` (sd_notify(3), issue #8): `READY=1` once it
//! serves, `STATUS=` lines for `systemctl status`, `STOPPING=1` when the drain begins, and
//! `WATCHDOG=1` from the runtime when the unit sets `WatchdogSec=`.
//!
//! Without `NOTIFY_SOCKET` (development, tests, `./deploy/serve`) nothing is sent and no task
//! is started. The binary's own module, declared in `main.rs`: the library knows nothing of
//! systemd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pdfworker::jobs::Runner;
use pdfworker::shutdown::Shutdown;
use sd_notify::NotifyState;

/// How often `STATUS=` is refreshed when no watchdog asks for more often.
const STATUS_EVERY: Duration = Duration::from_secs(10);

fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `states`. A failure is logged (once at warn level, then at debug, so a broken notify
/// socket does not fill the journal) and never fatal: serving matters more than telling.
fn send(states: &[NotifyState]) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = sd_notify::notify(states) {
        if WARNED.swap(true, Ordering::Relaxed) {
            log::debug!("sd_notify {states:?}: {e}");
        } else {
            log::warn!("telling systemd {states:?} failed: {e}");
        }
    }
}

/// `READY=1`: the listener is ready and the janitor started. `systemctl start` and `restart`
/// return only now, so a rolling restart (`deploy/install.sh`) restarts the next instance
/// once this one serves. With a watchdog, the first ping goes along: systemd counts the
/// interval from the start, and start-up has used part of it.
pub fn ready(status: &str) {
    let status = NotifyState::Status(status);
    if sd_notify::watchdog_enabled().is_some() {
        send(&[NotifyState::Ready, NotifyState::Watchdog, status]);
    } else {
        send(&[NotifyState::Ready, status]);
    }
}

/// `STOPPING=1`: the drain began (SIGTERM); systemd shows the unit as deactivating.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// Starts the heartbeat on the current runtime, if systemd listens: every period a `STATUS=`
/// line with the pool's job counts and, when the unit has `WatchdogSec=`, `WATCHDOG=1`.
/// Ends when `stop` fires (systemd stops the watchdog once the unit is stopping).
///
/// The ping is honest because it is a task like every request's: it is only sent when the
/// runtime's timer fires and a worker thread polls it, so a runtime wedged by blocking code
/// stops pinging, and systemd kills and restarts the instance (`Restart=on-failure`). It runs
/// every 10 s, or every half watchdog interval if that is shorter (sd_watchdog_enabled(3)
/// advises half).
pub fn heartbeat(runner: Runner, stop: Shutdown) {
    if !enabled() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    if let Some(w) = watchdog {
        log::info!("systemd watchdog: {w:?}, pinged every {period:?}");
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = stop.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut stop => return,
            }
            let c = runner.job_counts();
            let status = format!(
                "serving; pool jobs: {} queued, {} running, {} done, {} failed, {} cancelled",
                c.queued, c.running, c.done, c.failed, c.cancelled
            );
            let status = NotifyState::Status(&status);
            if watchdog.is_some() {
                send(&[NotifyState::Watchdog, status]);
            } else {
                send(&[status]);
            }
        }
    });
}
