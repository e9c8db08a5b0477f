//! The one shutdown signal: fires on SIGTERM or SIGINT, or when a test pulls the trigger.
//! The server and the job runner take a [`Shutdown`] so tests can stop them without signals.
//! Depends on tokio only.

use tokio::sync::watch;

/// Fires the paired [`Shutdown`]s.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// A cloneable future-maker that resolves once shutdown has begun.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A new trigger and its shutdown signal.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    /// Begins shutdown; every `Shutdown::wait` resolves.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves when the trigger fires or is dropped.
    pub async fn wait(mut self) {
        let _ = self.rx.wait_for(|fired| *fired).await;
    }
}

/// Fires `trigger` on the first SIGTERM or SIGINT.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn on_signals(trigger: Trigger) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        log::info!("{name} received: shutting down");
        trigger.fire();
        // Keep the handlers installed so a second signal does not kill us mid-drain; the
        // drain has its own deadline.
        loop {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            log::info!("shutdown already in progress");
        }
    });
    Ok(())
}
