//! WebSub publisher side: after a publish that changed public documents, each configured hub gets
//! `hub.mode=publish` with the changed documents' URLs. Pings run in their own tasks with retries
//! and backoff; publishing never waits for a hub.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use url::Url;

/// Attempts per ping (the first plus retries), and the backoff between them.
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

pub type Sender = mpsc::UnboundedSender<Vec<String>>;

pub fn channel() -> (Sender, mpsc::UnboundedReceiver<Vec<String>>) {
    mpsc::unbounded_channel()
}

/// Receives lists of changed feed URLs and pings every hub about each.
pub async fn run(
    hubs: Vec<Url>,
    mut changed: mpsc::UnboundedReceiver<Vec<String>>,
    user_agent: String,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .user_agent(user_agent)
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::limited(3))
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!("WebSub: cannot build the HTTP client ({e}); hubs will not be notified");
            return;
        }
    };
    let pings = TaskTracker::new();
    loop {
        let urls = tokio::select! {
            () = stop.cancelled() => break,
            u = changed.recv() => match u { Some(u) => u, None => break },
        };
        if urls.is_empty() {
            continue;
        }
        for hub in &hubs {
            for url in &urls {
                pings.spawn(ping(client.clone(), hub.clone(), url.clone(), stop.clone()));
            }
        }
    }
    pings.close();
    // A stop abandons retries: the next start publishes (and pings) again if anything changed.
    let _ = tokio::time::timeout(Duration::from_secs(2), pings.wait()).await;
}

/// One `hub.mode=publish` request per hub and feed URL (what every hub understands).
async fn ping(client: reqwest::Client, hub: Url, topic: String, stop: CancellationToken) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", "publish")
        .append_pair("hub.url", &topic)
        .finish();
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(hub.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await;
        let retry = match sent {
            Ok(r) if r.status().is_success() => {
                info!("WebSub: hub {hub} notified that {topic} changed");
                return;
            }
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 && r.status().as_u16() != 408 => {
                warn!("WebSub: hub {hub} refused the publish ping with {}; check [websub] hubs", r.status());
                return;
            }
            Ok(r) => format!("answered {}", r.status()),
            Err(e) => format!("failed: {e}"),
        };
        if attempt == ATTEMPTS {
            warn!("WebSub: hub {hub} {retry}; giving up after {ATTEMPTS} attempts (the next change pings again)");
            return;
        }
        debug!("WebSub: hub {hub} {retry}; retrying in {backoff:?}");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
