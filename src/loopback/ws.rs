//! An upgraded WebSocket connection of one service, with the fault plan applied to every data
//! frame it sends (stall, malformed, truncated, duplicate, stale replay, broken frame) and the
//! connection-level faults (disconnect, kill, dropped service) checked on every pass.

use super::faults::{FramePlan, Generations, Service, Verdict, malform, truncate};
use super::server::Shared;
use futures_util::SinkExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The server side of an upgraded connection.
pub(crate) type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// The session is over (the peer left, or a fault closed it).
#[derive(Debug)]
pub(crate) struct Ended;

/// Data frames remembered for stale replays.
const HISTORY: usize = 8;

/// One WebSocket connection of `service`.
pub(crate) struct Conn {
    pub ws: Socket,
    pub service: Service,
    pub app: Shared,
    generations: Generations,
    history: VecDeque<String>,
}

impl Conn {
    /// Wraps an upgraded socket and counts it as open.
    pub fn new(ws: Socket, service: Service, app: Shared) -> Self {
        app.stats.ws(service, true);
        Conn {
            generations: app.faults.generations(service),
            ws,
            service,
            app,
            history: VecDeque::new(),
        }
    }

    async fn send_text(&mut self, text: String) -> Result<(), Ended> {
        self.ws.send(Message::text(text)).await.map_err(|_| Ended)?;
        self.app.stats.frame(self.service);
        Ok(())
    }

    /// Sends a frame that faults never touch (`PONG`, subscription answers).
    pub async fn send_control(&mut self, text: String) -> Result<(), Ended> {
        self.send_text(text).await
    }

    /// Sends one data frame under the service's fault plan.
    pub async fn send_data(&mut self, text: String) -> Result<(), Ended> {
        let plan: FramePlan = self.app.faults.frame_plan(self.service);
        if plan.skip {
            return Ok(());
        }
        if plan.broken {
            return self.break_frame().await;
        }
        let wire = if plan.malformed {
            malform(&text)
        } else if plan.truncated {
            truncate(&text)
        } else {
            text.clone()
        };
        self.send_text(wire.clone()).await?;
        if plan.duplicate {
            self.send_text(wire).await?;
        }
        if plan.stale
            && self.history.len() >= 2
            && let Some(old) = self.history.get(self.history.len() - 2).cloned()
        {
            self.send_text(old).await?;
        }
        self.history.push_back(text);
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        Ok(())
    }

    /// Writes a text frame header announcing 256 bytes, only 16 of them, and closes the TCP
    /// connection: the client sees a frame cut off mid-way.
    async fn break_frame(&mut self) -> Result<(), Ended> {
        let _ = self.ws.flush().await;
        let io = self.ws.get_mut();
        let mut raw = vec![0x81u8, 126, 0x01, 0x00];
        raw.extend_from_slice(br#"{"event_type":"b"#);
        let _ = io.write_all(&raw).await;
        let _ = io.flush().await;
        let _ = io.shutdown().await;
        Err(Ended)
    }

    /// Applies connection-level faults: `Err` when the connection must end.
    pub async fn check(&mut self) -> Result<(), Ended> {
        match self.app.faults.verdict(self.service, self.generations) {
            Verdict::Keep => Ok(()),
            Verdict::Close => {
                self.close(CloseCode::Away, "going away").await;
                Err(Ended)
            }
            Verdict::Kill => {
                // Shut the TCP stream down with no close frame.
                let _ = self.ws.get_mut().shutdown().await;
                Err(Ended)
            }
        }
    }

    /// Sends a close frame and waits briefly for the peer's.
    pub async fn close(&mut self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.to_string().into(),
        };
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            self.ws.close(Some(frame)),
        )
        .await;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.app.stats.ws(self.service, false);
    }
}
