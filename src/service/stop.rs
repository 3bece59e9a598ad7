//! A clean stop: leave the source, keep what is queued in the journal, let the
//! running hooks finish within the grace.

use super::*;

impl Service {
    pub(super) async fn stop(mut self) {
        self.notifier.stopping();
        info!("stopping");
        if let Some(client) = self.client.as_mut() {
            client.shutdown().await;
        }
        // The catch-up ends with its inbox; the stream is stopped.
        drop(self.catch_up.take());
        if let Some(stream) = self.stream.take() {
            stream.abort();
            let _ = stream.await;
        }
        drop(self.arrivals_tx.take());
        // No more requests: a replay asked from now on finds no service.
        drop(self.control.take());
        // Events that arrived but were not dispatched before the stop: with a
        // journal their runs are recorded, queued, for the next start; without
        // one each run they would have started is logged as never started.
        let user_id = self.user_id();
        drop(self.deliveries_tx);
        let mut left = Vec::new();
        while let Ok(inbound) = self.deliveries.try_recv() {
            let delivery = match inbound {
                Inbound::Message(delivery) => delivery,
                Inbound::Refused(refusal) => {
                    self.complaints.warn(refusal.kind(), &refusal.to_string());
                    continue;
                }
            };
            if let Message::TracimEvent(event) = delivery.envelope.message {
                left.push(event);
            }
        }
        // What Tracim sent and the loop did not take: marks in order with events.
        while let Ok(arrival) = self.arrivals.try_recv() {
            match arrival {
                Arrival::Event(event) => left.push(event),
                Arrival::Mark(key, value) => self.journal.set_mark(key, value),
            }
        }
        for event in left {
            if !self.journal.admit(event.id()) {
                continue;
            }
            let hooks = self.matcher.select(&event, &user_id);
            if self.journal.is_enabled() {
                self.journal
                    .record(new_event(&event), hooks.iter().map(|h| h.name.as_str()));
                if !hooks.is_empty() {
                    info!(
                        event_id = event.id(),
                        runs = hooks.len(),
                        "event received while stopping: its runs are left in the journal for the next start"
                    );
                }
                continue;
            }
            for hook in hooks {
                let _run = crate::logging::run_span(&hook.name, event.event_type()).entered();
                warn!(hook = %hook.name, event_id = event.id(), "run never started: shutting down");
            }
        }
        self.complaints.flush(true);
        self.handle
            .supervisor
            .shutdown(self.config.defaults.shutdown_grace)
            .await;
        // After the supervisor: every run's end is sent; now it is made durable.
        let journal = self.journal.clone();
        drop(self.handle);
        drop(self.journal);
        match tokio::task::spawn_blocking(move || journal.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!("the journal could not be written to the end: {e}"),
            Err(e) => error!("closing the journal failed: {e}"),
        }
        info!("stopped");
    }
}
