//! One HTTP/2 server connection: a synchronous state machine ([`Connection`]: bytes in,
//! frames out, requests to the service) and the async loop that drives it over a stream
//! ([`serve`]). Keeping the protocol free of I/O lets the unit tests feed it frames directly.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::frame::{
    self, DEFAULT_MAX_FRAME, DEFAULT_WINDOW, ErrorCode, HEADER_LEN, Head, MAX_WINDOW, PREFACE,
    flag, kind, setting,
};
use super::headers::{self, HeadError, RequestHead};
use super::hpack::Decoder;
use crate::server::scratch;
use crate::server::web::{Later, Reply, Request, Response, Service};

/// Bounds on what one connection may ask of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Streams open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`); more are refused.
    pub max_streams: usize,
    /// Largest decoded header list, and largest compressed header block.
    pub max_header_list: usize,
    /// Largest request body.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_streams: 100,
            max_header_list: 16 * 1024,
            max_body: 65_535,
        }
    }
}

/// The client's dynamic table may not grow past the default (this side never raises
/// `SETTINGS_HEADER_TABLE_SIZE`).
const HEADER_TABLE_SIZE: usize = 4096;
/// After a GOAWAY, how long streams still in progress may take before the connection closes.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Most answers of one connection running in tasks at once; beyond it reading pauses. Streams
/// the client resets leave the stream limit at once but their tasks run on, so without this a
/// client opening and resetting streams (the "rapid reset" attack) could start unbounded work.
const MAX_PENDING: usize = 128;
/// Top up the client's connection window once this much of it is used.
const WINDOW_TOP_UP: i64 = DEFAULT_WINDOW / 2;

/// A connection error: the code sent in GOAWAY and why (for the debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionError(pub ErrorCode, pub &'static str);

type Result<T> = std::result::Result<T, ConnectionError>;

fn fail<T>(code: ErrorCode, why: &'static str) -> Result<T> {
    Err(ConnectionError(code, why))
}

/// Where the connection is in its opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's preface.
    Preface,
    /// Preface read; the next frame must be the client's SETTINGS.
    Settings,
    /// Open.
    Open,
}

/// A stream the client opened and this side has not finished.
struct Stream {
    id: u32,
    state: State,
    /// What the client lets this side send on the stream.
    send_window: i64,
    /// What this side lets the client send on the stream (never topped up: a body larger
    /// than the initial window is larger than any DNS message).
    recv_window: i64,
}

enum State {
    /// Reading the request body.
    Receiving { head: RequestHead, body: Vec<u8> },
    /// The service is answering.
    Answering,
    /// The response head is sent; the body waits for flow-control window.
    Sending { body: Bytes, sent: usize },
}

/// A header block continued in CONTINUATION frames.
struct Continuation {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

/// The protocol state of one connection.
pub struct Connection {
    limits: Limits,
    phase: Phase,
    decoder: Decoder,
    streams: Vec<Stream>,
    continuation: Option<Continuation>,
    /// Highest stream id the client opened (and this side accepted for processing).
    last_stream: u32,
    /// The connection-level window for sending.
    send_window: i64,
    /// The client's `SETTINGS_INITIAL_WINDOW_SIZE`.
    initial_window: i64,
    /// The client's `SETTINGS_MAX_FRAME_SIZE`.
    max_frame: usize,
    /// The connection-level window the client may still send into.
    recv_window: i64,
    /// The client changed its table size: the next header block starts with a size update.
    size_update_due: bool,
    /// Frames to write.
    pub output: Vec<u8>,
    /// Answers to run in tasks, by stream.
    pub later: Vec<(u32, Later)>,
    /// A GOAWAY was sent: no new streams.
    pub going_away: bool,
    /// The client sent GOAWAY.
    pub peer_going_away: bool,
    /// A connection error was sent: close once the output is written.
    pub failed: Option<ConnectionError>,
}

impl Connection {
    /// A connection that has sent nothing yet; [`Connection::output`] holds this side's
    /// SETTINGS, which may be sent before the client's preface arrives (§3.4).
    pub fn new(limits: Limits) -> Connection {
        let decoder = Decoder::new(HEADER_TABLE_SIZE);
        let mut output = Vec::new();
        frame::settings(
            &mut output,
            &[
                (setting::MAX_CONCURRENT_STREAMS, limits.max_streams as u32),
                (setting::MAX_HEADER_LIST_SIZE, limits.max_header_list as u32),
                (setting::ENABLE_PUSH, 0),
            ],
        );
        Connection {
            limits,
            phase: Phase::Preface,
            decoder,
            streams: Vec::new(),
            continuation: None,
            last_stream: 0,
            send_window: DEFAULT_WINDOW,
            initial_window: DEFAULT_WINDOW,
            max_frame: DEFAULT_MAX_FRAME,
            recv_window: DEFAULT_WINDOW,
            size_update_due: false,
            output,
            later: Vec::new(),
            going_away: false,
            peer_going_away: false,
            failed: None,
        }
    }

    /// Streams in progress.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Handles every complete frame at the front of `input` and removes it. On a connection
    /// error the GOAWAY is queued and [`Connection::failed`] set; nothing more is read.
    pub fn receive(&mut self, input: &mut BytesMut, service: &impl Service) {
        if self.failed.is_some() {
            input.clear();
            return;
        }
        if let Err(error) = self.receive_frames(input, service) {
            self.output.clear();
            frame::goaway(&mut self.output, self.last_stream, error.0);
            self.failed = Some(error);
            self.going_away = true;
            input.clear();
        }
    }

    fn receive_frames(&mut self, input: &mut BytesMut, service: &impl Service) -> Result<()> {
        if self.phase == Phase::Preface {
            let seen = input.len().min(PREFACE.len());
            if input[..seen] != PREFACE[..seen] {
                return fail(ErrorCode::Protocol, "not the HTTP/2 preface");
            }
            if seen < PREFACE.len() {
                return Ok(());
            }
            input.advance(PREFACE.len());
            self.phase = Phase::Settings;
        }
        let mut at = 0;
        while let Some(head) = Head::parse(&input[at..]) {
            if head.len > DEFAULT_MAX_FRAME {
                return fail(
                    ErrorCode::FrameSize,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                );
            }
            let end = at + HEADER_LEN + head.len;
            if input.len() < end {
                input.reserve(end - input.len());
                break;
            }
            self.frame(head, &input[at + HEADER_LEN..end], service)?;
            at = end;
        }
        input.advance(at);
        Ok(())
    }

    fn frame(&mut self, head: Head, payload: &[u8], service: &impl Service) -> Result<()> {
        if self.phase == Phase::Settings {
            if head.kind != kind::SETTINGS || head.has(flag::ACK) {
                return fail(ErrorCode::Protocol, "first frame is not SETTINGS");
            }
            self.phase = Phase::Open;
        }
        if let Some(c) = &self.continuation
            && (head.kind != kind::CONTINUATION || head.stream != c.stream)
        {
            return fail(ErrorCode::Protocol, "header block interrupted");
        }
        match head.kind {
            kind::DATA => self.on_data(head, payload, service),
            kind::HEADERS => self.on_headers(head, payload, service),
            kind::CONTINUATION => self.on_continuation(head, payload, service),
            kind::PRIORITY => {
                if head.stream == 0 {
                    return fail(ErrorCode::Protocol, "PRIORITY on stream 0");
                }
                if payload.len() != 5 {
                    self.reset(head.stream, ErrorCode::FrameSize);
                }
                Ok(())
            }
            kind::RST_STREAM => {
                if head.stream == 0 {
                    return fail(ErrorCode::Protocol, "RST_STREAM on stream 0");
                }
                if payload.len() != 4 {
                    return fail(ErrorCode::FrameSize, "RST_STREAM length");
                }
                if head.stream > self.last_stream && !self.going_away {
                    return fail(ErrorCode::Protocol, "RST_STREAM on an idle stream");
                }
                self.streams.retain(|s| s.id != head.stream);
                Ok(())
            }
            kind::SETTINGS => self.on_settings(head, payload),
            kind::PUSH_PROMISE => fail(ErrorCode::Protocol, "a client sent PUSH_PROMISE"),
            kind::PING => {
                if head.stream != 0 {
                    return fail(ErrorCode::Protocol, "PING on a stream");
                }
                if payload.len() != 8 {
                    return fail(ErrorCode::FrameSize, "PING length");
                }
                if !head.has(flag::ACK) {
                    frame::ping_ack(&mut self.output, payload);
                }
                Ok(())
            }
            kind::GOAWAY => {
                if head.stream != 0 {
                    return fail(ErrorCode::Protocol, "GOAWAY on a stream");
                }
                if payload.len() < 8 {
                    return fail(ErrorCode::FrameSize, "GOAWAY length");
                }
                self.peer_going_away = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.on_window_update(head, payload),
            // §5.5: unknown frame types are ignored.
            _ => Ok(()),
        }
    }

    fn on_settings(&mut self, head: Head, payload: &[u8]) -> Result<()> {
        if head.stream != 0 {
            return fail(ErrorCode::Protocol, "SETTINGS on a stream");
        }
        if head.has(flag::ACK) {
            return match payload.len() {
                0 => Ok(()),
                _ => fail(ErrorCode::FrameSize, "SETTINGS ACK with a payload"),
            };
        }
        if !payload.len().is_multiple_of(6) {
            return fail(ErrorCode::FrameSize, "SETTINGS length");
        }
        for entry in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            match id {
                setting::HEADER_TABLE_SIZE => self.size_update_due = true,
                setting::ENABLE_PUSH if value > 1 => {
                    return fail(ErrorCode::Protocol, "SETTINGS_ENABLE_PUSH above 1");
                }
                setting::INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > MAX_WINDOW {
                        return fail(ErrorCode::FlowControl, "SETTINGS_INITIAL_WINDOW_SIZE");
                    }
                    // §6.9.2: the change applies to every open stream's window.
                    let delta = value - self.initial_window;
                    for stream in &mut self.streams {
                        stream.send_window += delta;
                        if stream.send_window > MAX_WINDOW {
                            return fail(ErrorCode::FlowControl, "stream window overflow");
                        }
                    }
                    self.initial_window = value;
                }
                setting::MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return fail(ErrorCode::Protocol, "SETTINGS_MAX_FRAME_SIZE");
                    }
                    self.max_frame = value as usize;
                }
                _ => {}
            }
        }
        frame::settings_ack(&mut self.output);
        self.send_blocked();
        Ok(())
    }

    fn on_window_update(&mut self, head: Head, payload: &[u8]) -> Result<()> {
        if payload.len() != 4 {
            return fail(ErrorCode::FrameSize, "WINDOW_UPDATE length");
        }
        let increment = i64::from(
            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
        );
        if head.stream == 0 {
            if increment == 0 {
                return fail(ErrorCode::Protocol, "WINDOW_UPDATE of 0");
            }
            self.send_window += increment;
            if self.send_window > MAX_WINDOW {
                return fail(ErrorCode::FlowControl, "connection window overflow");
            }
            self.send_blocked();
            return Ok(());
        }
        let Some(i) = self.find(head.stream) else {
            if head.stream > self.last_stream && !self.going_away {
                return fail(ErrorCode::Protocol, "WINDOW_UPDATE on an idle stream");
            }
            return Ok(());
        };
        let stream = &mut self.streams[i];
        stream.send_window += increment;
        if increment == 0 {
            self.reset(head.stream, ErrorCode::Protocol);
        } else if stream.send_window > MAX_WINDOW {
            self.reset(head.stream, ErrorCode::FlowControl);
        } else {
            self.send_body(i);
        }
        Ok(())
    }

    fn on_data(&mut self, head: Head, payload: &[u8], service: &impl Service) -> Result<()> {
        if head.stream == 0 {
            return fail(ErrorCode::Protocol, "DATA on stream 0");
        }
        // Flow control counts the whole payload, padding included (§6.9.1).
        let len = payload.len() as i64;
        self.recv_window -= len;
        if self.recv_window < 0 {
            return fail(ErrorCode::FlowControl, "DATA beyond the connection window");
        }
        if DEFAULT_WINDOW - self.recv_window >= WINDOW_TOP_UP {
            frame::window_update(
                &mut self.output,
                0,
                (DEFAULT_WINDOW - self.recv_window) as u32,
            );
            self.recv_window = DEFAULT_WINDOW;
        }
        let data = frame::unpad(&head, payload)
            .ok_or(ConnectionError(ErrorCode::Protocol, "DATA padding"))?;
        let Some(i) = self.find(head.stream) else {
            if head.stream > self.last_stream && !self.going_away {
                return fail(ErrorCode::Protocol, "DATA on an idle stream");
            }
            // A stream this side reset or finished: the client may not know yet.
            return Ok(());
        };
        let max_body = self.limits.max_body;
        let stream = &mut self.streams[i];
        stream.recv_window -= len;
        let State::Receiving { body, .. } = &mut stream.state else {
            self.reset(head.stream, ErrorCode::StreamClosed);
            return Ok(());
        };
        if stream.recv_window < 0 {
            self.reset(head.stream, ErrorCode::FlowControl);
            return Ok(());
        }
        body.extend_from_slice(data);
        let end = head.has(flag::END_STREAM);
        if body.len() > max_body || (!end && stream.recv_window == 0) {
            // RFC 9113 §8.1: answer early, then ask the client to stop sending.
            let id = head.stream;
            self.respond(
                id,
                Response::plain(http::StatusCode::PAYLOAD_TOO_LARGE, "message too large"),
            );
            frame::rst_stream(&mut self.output, id, ErrorCode::NoError);
            self.streams.retain(|s| s.id != id);
            return Ok(());
        }
        if end {
            self.complete(i, service);
        }
        Ok(())
    }

    fn on_headers(&mut self, head: Head, payload: &[u8], service: &impl Service) -> Result<()> {
        if head.stream == 0 {
            return fail(ErrorCode::Protocol, "HEADERS on stream 0");
        }
        let mut fragment = frame::unpad(&head, payload)
            .ok_or(ConnectionError(ErrorCode::Protocol, "HEADERS padding"))?;
        if head.has(flag::PRIORITY) {
            fragment = fragment
                .get(5..)
                .ok_or(ConnectionError(ErrorCode::FrameSize, "HEADERS priority"))?;
        }
        let end_stream = head.has(flag::END_STREAM);
        if head.has(flag::END_HEADERS) {
            return self.header_block(head.stream, end_stream, fragment, service);
        }
        if fragment.len() > self.limits.max_header_list {
            return fail(ErrorCode::EnhanceYourCalm, "header block too large");
        }
        self.continuation = Some(Continuation {
            stream: head.stream,
            end_stream,
            block: fragment.to_vec(),
        });
        Ok(())
    }

    fn on_continuation(
        &mut self,
        head: Head,
        payload: &[u8],
        service: &impl Service,
    ) -> Result<()> {
        let Some(continuation) = self.continuation.as_mut() else {
            return fail(ErrorCode::Protocol, "CONTINUATION without HEADERS");
        };
        continuation.block.extend_from_slice(payload);
        if continuation.block.len() > self.limits.max_header_list {
            return fail(ErrorCode::EnhanceYourCalm, "header block too large");
        }
        if !head.has(flag::END_HEADERS) {
            return Ok(());
        }
        let Continuation {
            stream,
            end_stream,
            block,
        } = self.continuation.take().expect("checked above");
        self.header_block(stream, end_stream, &block, service)
    }

    /// A complete header block: a new request, or trailers of one being received.
    fn header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
        service: &impl Service,
    ) -> Result<()> {
        let limit = self.limits.max_header_list;
        if let Some(i) = self.find(id) {
            let trailers = headers::decode_trailers(&mut self.decoder, block, limit);
            if trailers == Err(HeadError::Compression) {
                return fail(ErrorCode::Compression, "HPACK");
            }
            let receiving = matches!(self.streams[i].state, State::Receiving { .. });
            if !receiving {
                self.reset(id, ErrorCode::StreamClosed);
            } else if !end_stream || trailers.is_err() {
                self.reset(id, ErrorCode::Protocol);
            } else {
                self.complete(i, service);
            }
            return Ok(());
        }
        // Decoded before anything else, so the decoder's table follows the client's encoder
        // even for a stream about to be refused.
        let request = headers::decode_request(&mut self.decoder, block, limit);
        if id.is_multiple_of(2) {
            return fail(ErrorCode::Protocol, "a client opened an even stream");
        }
        if id <= self.last_stream {
            return fail(ErrorCode::StreamClosed, "HEADERS on a closed stream");
        }
        if self.going_away {
            // §6.8: streams above the GOAWAY's last stream are ignored.
            return Ok(());
        }
        self.last_stream = id;
        let head = match request {
            Ok(head) => head,
            Err(HeadError::Compression) => return fail(ErrorCode::Compression, "HPACK"),
            Err(HeadError::Malformed(why)) => {
                tracing::debug!(stream = id, why, "malformed HTTP/2 request");
                frame::rst_stream(&mut self.output, id, ErrorCode::Protocol);
                return Ok(());
            }
        };
        if self.streams.len() >= self.limits.max_streams {
            frame::rst_stream(&mut self.output, id, ErrorCode::RefusedStream);
            return Ok(());
        }
        self.streams.push(Stream {
            id,
            state: State::Receiving {
                head,
                body: Vec::new(),
            },
            send_window: self.initial_window,
            recv_window: DEFAULT_WINDOW,
        });
        if end_stream {
            self.complete(self.streams.len() - 1, service);
        }
        Ok(())
    }

    /// The request on stream `i` is complete: hand it to the service.
    fn complete(&mut self, i: usize, service: &impl Service) {
        let stream = &mut self.streams[i];
        let id = stream.id;
        let State::Receiving { head, body } =
            std::mem::replace(&mut stream.state, State::Answering)
        else {
            return;
        };
        let request = Request {
            method: head.method,
            target: head.path,
            content_type: head.content_type,
            body,
        };
        match service.call(request) {
            Reply::Now(response) => self.respond(id, response),
            Reply::Later(later) => self.later.push((id, later)),
        }
    }

    /// Sends `response` on stream `id`, as much of its body as the windows allow. A stream
    /// the client reset meanwhile is gone, and its response with it.
    pub fn respond(&mut self, id: u32, response: Response) {
        let Some(i) = self.find(id) else {
            return;
        };
        let headers: Vec<(&str, &str)> = response
            .headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        let mut block = Vec::new();
        headers::encode_response(
            &mut block,
            response.status.as_u16(),
            &headers,
            response.body.len(),
            std::mem::take(&mut self.size_update_due),
        );
        if block.len() > self.max_frame {
            // Only a pathological header value could do this; the client learns of a failure.
            block.clear();
            headers::encode_response(&mut block, 500, &[], 0, false);
            frame::headers(&mut self.output, id, &block, true);
            self.streams.swap_remove(i);
            return;
        }
        let empty = response.body.is_empty();
        frame::headers(&mut self.output, id, &block, empty);
        if empty {
            self.streams.swap_remove(i);
            return;
        }
        self.streams[i].state = State::Sending {
            body: response.body,
            sent: 0,
        };
        self.send_body(i);
    }

    /// Sends what the windows allow of stream `i`'s body; removes the stream once all is sent.
    fn send_body(&mut self, i: usize) {
        let stream = &mut self.streams[i];
        let State::Sending { body, sent } = &mut stream.state else {
            return;
        };
        loop {
            let left = body.len() - *sent;
            let allowed = self.send_window.min(stream.send_window).max(0) as usize;
            let n = left.min(self.max_frame).min(allowed);
            if n == 0 {
                return;
            }
            let end = n == left;
            frame::data(&mut self.output, stream.id, &body[*sent..*sent + n], end);
            *sent += n;
            self.send_window -= n as i64;
            stream.send_window -= n as i64;
            if end {
                self.streams.swap_remove(i);
                return;
            }
        }
    }

    /// Sends what newly opened windows allow of every waiting body.
    fn send_blocked(&mut self) {
        // Backwards, because a finished stream is swap-removed.
        for i in (0..self.streams.len()).rev() {
            if self.send_window <= 0 {
                return;
            }
            self.send_body(i);
        }
    }

    /// Resets stream `id` (a stream error) and forgets it.
    fn reset(&mut self, id: u32, code: ErrorCode) {
        frame::rst_stream(&mut self.output, id, code);
        self.streams.retain(|s| s.id != id);
    }

    /// Starts a graceful close: no new streams; those open are finished.
    pub fn go_away(&mut self) {
        if !self.going_away {
            frame::goaway(&mut self.output, self.last_stream, ErrorCode::NoError);
            self.going_away = true;
        }
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }
}

/// Answers finished by tasks, by stream.
type Done = (
    mpsc::UnboundedSender<(u32, Response)>,
    mpsc::UnboundedReceiver<(u32, Response)>,
);

/// Serves one HTTP/2 connection until the client closes it, it is idle for `idle`, a
/// connection error, or `shutdown` (then streams in progress finish first, for up to
/// five seconds).
pub async fn serve<S, V>(
    mut io: S,
    service: V,
    limits: Limits,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    V: Service,
{
    let mut connection = Connection::new(limits);
    let mut input = BytesMut::new();
    // Made when an answer first waits on an upstream and dropped when none waits (as in
    // `stream.rs`): an idle connection keeps no channel.
    let mut done: Option<Done> = None;
    let mut pending = 0usize;
    let mut reading = true;
    loop {
        connection.receive(&mut input, &service);
        for (id, later) in connection.later.drain(..) {
            pending += 1;
            let tx = done.get_or_insert_with(mpsc::unbounded_channel).0.clone();
            tokio::spawn(async move {
                let _ = tx.send((id, later.await));
            });
        }
        if !connection.output.is_empty() {
            io.write_all(&connection.output).await?;
            io.flush().await?;
            // An idle connection keeps no output buffer.
            connection.output = Vec::new();
        }
        if let Some(error) = connection.failed {
            tracing::debug!(?error, "HTTP/2 connection error");
            let _ = io.shutdown().await;
            return Ok(());
        }
        if !reading && pending == 0 {
            // The client is gone: what it had not finished sending never will be.
            let _ = io.shutdown().await;
            return Ok(());
        }
        let closing = connection.going_away || connection.peer_going_away;
        if closing && connection.open_streams() == 0 && pending == 0 {
            connection.go_away();
            io.write_all(&connection.output).await?;
            let _ = io.shutdown().await;
            return Ok(());
        }
        scratch::release_if_empty(&mut input);
        let wait = if connection.going_away {
            CLOSE_GRACE
        } else {
            idle
        };
        tokio::select! {
            _ = shutdown.wait_for(|&s| s), if !connection.going_away => connection.go_away(),
            read = tokio::time::timeout(wait, scratch::read_into(&mut io, &mut input)), if reading && pending < MAX_PENDING => match read {
                Ok(Ok(n)) if n > 0 => {}
                // Closed or failed: finish what is answered, write nothing more to a reader
                // that is gone.
                Ok(_) => reading = false,
                Err(_) if connection.going_away => return Ok(()),
                Err(_) if connection.open_streams() == 0 && pending == 0 => connection.go_away(),
                Err(_) => {}
            },
            Some((id, response)) = recv(&mut done), if pending > 0 => {
                pending -= 1;
                connection.respond(id, response);
                if pending == 0 {
                    done = None;
                }
            }
        }
    }
}

/// The next finished answer (only polled while some are pending, so the channel exists).
async fn recv(done: &mut Option<Done>) -> Option<(u32, Response)> {
    match done {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use loona_hpack::Encoder;

    /// Answers `/later` with a future, everything else at once with the path and body echoed.
    struct Echo;

    impl Service for Echo {
        fn call(&self, request: Request) -> Reply {
            let mut body = request.target.clone().into_bytes();
            body.extend_from_slice(&request.body);
            let response = Response::new(StatusCode::OK, "text/plain", body);
            if request.target == "/later" {
                Reply::Later(Box::pin(async move { response }))
            } else {
                Reply::Now(response)
            }
        }
    }

    /// A frame as the server wrote it.
    #[derive(Debug)]
    struct Out {
        head: Head,
        payload: Vec<u8>,
    }

    /// A client: encodes requests with its own HPACK encoder, reads the server's frames.
    struct Client {
        connection: Connection,
        encoder: Encoder<'static>,
        decoder: loona_hpack::Decoder<'static>,
    }

    impl Client {
        fn open(limits: Limits, settings: &[(u16, u32)]) -> Client {
            let mut client = Client {
                connection: Connection::new(limits),
                encoder: Encoder::new(),
                decoder: loona_hpack::Decoder::new(),
            };
            let mut bytes = PREFACE.to_vec();
            frame::settings(&mut bytes, settings);
            client.send(&bytes);
            let frames = client.take();
            assert_eq!(frames[0].head.kind, kind::SETTINGS, "server SETTINGS first");
            assert_eq!(frames[1].head.kind, kind::SETTINGS);
            assert!(frames[1].head.has(flag::ACK));
            client
        }

        fn send(&mut self, bytes: &[u8]) {
            let mut input = BytesMut::from(bytes);
            self.connection.receive(&mut input, &Echo);
            assert!(input.is_empty() || self.connection.failed.is_none());
        }

        fn block(&mut self, method: &str, path: &str) -> Vec<u8> {
            self.encoder.encode([
                (&b":method"[..], method.as_bytes()),
                (b":scheme", b"https"),
                (b":authority", b"dns.test"),
                (b":path", path.as_bytes()),
                (b"content-type", b"application/dns-message"),
            ])
        }

        fn request(&mut self, id: u32, method: &str, path: &str, end_stream: bool) {
            let block = self.block(method, path);
            let mut bytes = Vec::new();
            frame::headers(&mut bytes, id, &block, end_stream);
            self.send(&bytes);
        }

        fn take(&mut self) -> Vec<Out> {
            let bytes = std::mem::take(&mut self.connection.output);
            let mut frames = Vec::new();
            let mut at = 0;
            while let Some(head) = Head::parse(&bytes[at..]) {
                let end = at + HEADER_LEN + head.len;
                frames.push(Out {
                    head,
                    payload: bytes[at + HEADER_LEN..end].to_vec(),
                });
                at = end;
            }
            assert_eq!(at, bytes.len(), "whole frames only");
            frames
        }

        fn status(&mut self, frame: &Out) -> String {
            assert_eq!(frame.head.kind, kind::HEADERS);
            let fields = self.decoder.decode(&frame.payload).unwrap();
            String::from_utf8(fields[0].1.clone()).unwrap()
        }
    }

    fn body_of(frames: &[Out], stream: u32) -> Vec<u8> {
        frames
            .iter()
            .filter(|f| f.head.kind == kind::DATA && f.head.stream == stream)
            .flat_map(|f| f.payload.clone())
            .collect()
    }

    #[test]
    fn a_get_is_answered_with_headers_and_data() {
        let mut client = Client::open(Limits::default(), &[]);
        client.request(1, "GET", "/dns-query?dns=AAAB", true);
        let frames = client.take();
        assert_eq!(client.status(&frames[0]), "200");
        assert_eq!(body_of(&frames, 1), b"/dns-query?dns=AAAB");
        assert!(frames.last().unwrap().head.has(flag::END_STREAM));
        assert_eq!(client.connection.open_streams(), 0);
    }

    #[test]
    fn a_post_body_in_several_padded_data_frames_is_joined() {
        let mut client = Client::open(Limits::default(), &[]);
        client.request(3, "POST", "/p", false);
        let mut bytes = Vec::new();
        frame::data(&mut bytes, 3, b"ab", false);
        // A padded frame: pad length 3, "cd", three zeros.
        let padded = [3, b'c', b'd', 0, 0, 0];
        frame::data(&mut bytes, 3, &padded, true);
        let at = bytes.len() - HEADER_LEN - padded.len();
        bytes[at + 4] |= flag::PADDED;
        client.send(&bytes);
        let frames = client.take();
        assert_eq!(body_of(&frames, 3), b"/pabcd");
    }

    #[test]
    fn responses_wait_for_the_clients_window_and_respect_its_frame_size() {
        let mut client = Client::open(Limits::default(), &[(setting::INITIAL_WINDOW_SIZE, 5)]);
        client.request(1, "GET", "/twelve-bytes", true);
        let frames = client.take();
        assert_eq!(body_of(&frames, 1), b"/twel");
        assert!(!frames.last().unwrap().head.has(flag::END_STREAM));
        let mut bytes = Vec::new();
        frame::window_update(&mut bytes, 1, 100);
        client.send(&bytes);
        let frames = client.take();
        assert_eq!(body_of(&frames, 1), b"ve-bytes");
        assert!(frames.last().unwrap().head.has(flag::END_STREAM));

        // A 40,000-byte body goes out in frames of at most 16,384 bytes.
        let mut client = Client::open(Limits::default(), &[]);
        client.request(1, "POST", "/", false);
        let mut bytes = Vec::new();
        for chunk in [16_384, 16_384, 7_231] {
            frame::data(&mut bytes, 1, &vec![b'x'; chunk], chunk == 7_231);
        }
        client.send(&bytes);
        let data: Vec<_> = client
            .take()
            .into_iter()
            .filter(|f| f.head.kind == kind::DATA)
            .map(|f| f.payload.len())
            .collect();
        assert_eq!(data, [16_384, 16_384, 7_232]);
    }

    #[test]
    fn streams_beyond_the_limit_are_refused_and_reset_streams_lose_their_answer() {
        let limits = Limits {
            max_streams: 2,
            ..Limits::default()
        };
        let mut client = Client::open(limits, &[]);
        client.request(1, "GET", "/later", true);
        client.request(3, "GET", "/later", true);
        client.request(5, "GET", "/later", true);
        let frames = client.take();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].head.kind, kind::RST_STREAM);
        assert_eq!(frames[0].head.stream, 5);
        assert_eq!(
            frames[0].payload,
            (ErrorCode::RefusedStream as u32).to_be_bytes()
        );
        let later: Vec<u32> = client
            .connection
            .later
            .drain(..)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(later, [1, 3]);
        // The client cancels stream 1; its answer arriving afterwards is dropped.
        let mut bytes = Vec::new();
        frame::rst_stream(&mut bytes, 1, ErrorCode::Cancel);
        client.send(&bytes);
        client
            .connection
            .respond(1, Response::plain(StatusCode::OK, "late"));
        client
            .connection
            .respond(3, Response::plain(StatusCode::OK, "late"));
        let frames = client.take();
        assert!(frames.iter().all(|f| f.head.stream == 3));
        assert_eq!(body_of(&frames, 3), b"late");
    }

    #[test]
    fn header_blocks_continue_and_interruptions_are_connection_errors() {
        let mut client = Client::open(Limits::default(), &[]);
        let block = client.block("GET", "/split");
        let mut bytes = Vec::new();
        frame::headers(&mut bytes, 1, &block[..4], true);
        bytes[4] &= !flag::END_HEADERS;
        bytes.extend_from_slice(&[
            0,
            0,
            (block.len() - 4) as u8,
            kind::CONTINUATION,
            flag::END_HEADERS,
        ]);
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&block[4..]);
        client.send(&bytes);
        assert_eq!(body_of(&client.take(), 1), b"/split");

        // A PING between HEADERS and its CONTINUATION breaks the block.
        let block = client.block("GET", "/split");
        let mut bytes = Vec::new();
        frame::headers(&mut bytes, 3, &block[..4], true);
        bytes[4] &= !flag::END_HEADERS;
        bytes.extend_from_slice(&[0, 0, 8, kind::PING, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0; 8]);
        client.send(&bytes);
        let frames = client.take();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].head.kind, kind::GOAWAY);
        assert_eq!(
            frames[0].payload[..4],
            1u32.to_be_bytes(),
            "last stream processed"
        );
        assert_eq!(
            frames[0].payload[4..],
            (ErrorCode::Protocol as u32).to_be_bytes()
        );
        assert!(client.connection.failed.is_some());
    }

    #[test]
    fn protocol_violations_end_the_connection_with_goaway() {
        let cases: [(&[u8], ErrorCode); 4] = [
            // Not a preface at all (an HTTP/1.1 request on an h2 connection).
            (b"GET / HTTP/1.1\r\n\r\n", ErrorCode::Protocol),
            // A stream opened with an even id.
            (
                &[0, 0, 0, kind::HEADERS, flag::END_HEADERS, 0, 0, 0, 2],
                ErrorCode::Protocol,
            ),
            // A frame larger than the default maximum.
            (
                &[0, 0x40, 0x01, kind::DATA, 0, 0, 0, 0, 1],
                ErrorCode::FrameSize,
            ),
            // A connection window overflow.
            (
                &[
                    0,
                    0,
                    4,
                    kind::WINDOW_UPDATE,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0x7f,
                    0xff,
                    0xff,
                    0xff,
                ],
                ErrorCode::FlowControl,
            ),
        ];
        for (bytes, code) in cases {
            let mut connection = Connection::new(Limits::default());
            let mut input = BytesMut::new();
            if bytes.starts_with(b"GET") {
                input.extend_from_slice(bytes);
            } else {
                input.extend_from_slice(PREFACE);
                frame::settings(&mut input_vec(&mut input), &[]);
                input.extend_from_slice(bytes);
            }
            connection.receive(&mut input, &Echo);
            let failed = connection.failed.expect("a connection error");
            assert_eq!(failed.0, code, "{failed:?}");
            let out = &connection.output;
            assert_eq!(out[3], kind::GOAWAY);
            assert_eq!(out[13..17], (code as u32).to_be_bytes());
        }
    }

    /// Appends through a `Vec` (the frame writers' type) to a `BytesMut`.
    fn input_vec(input: &mut BytesMut) -> VecSink<'_> {
        VecSink {
            input,
            bytes: Vec::new(),
        }
    }

    struct VecSink<'a> {
        input: &'a mut BytesMut,
        bytes: Vec<u8>,
    }

    impl std::ops::Deref for VecSink<'_> {
        type Target = Vec<u8>;
        fn deref(&self) -> &Vec<u8> {
            &self.bytes
        }
    }

    impl std::ops::DerefMut for VecSink<'_> {
        fn deref_mut(&mut self) -> &mut Vec<u8> {
            &mut self.bytes
        }
    }

    impl Drop for VecSink<'_> {
        fn drop(&mut self) {
            self.input.extend_from_slice(&self.bytes);
        }
    }

    #[test]
    fn oversized_bodies_get_413_and_pings_are_echoed() {
        let mut client = Client::open(Limits::default(), &[]);
        client.request(1, "POST", "/big", false);
        // 65,535 bytes fill the stream's window without ending the body: it can never fit.
        let mut bytes = Vec::new();
        for _ in 0..3 {
            frame::data(&mut bytes, 1, &[0; 16_384], false);
        }
        frame::data(&mut bytes, 1, &[0; 16_383], false);
        client.send(&bytes);
        let frames = client.take();
        let kinds: Vec<u8> = frames.iter().map(|f| f.head.kind).collect();
        assert!(
            kinds.contains(&kind::WINDOW_UPDATE),
            "connection window topped up"
        );
        let headers = frames
            .iter()
            .find(|f| f.head.kind == kind::HEADERS)
            .unwrap();
        assert_eq!(client.status(headers), "413");
        let reset = frames.last().unwrap();
        assert_eq!(reset.head.kind, kind::RST_STREAM);
        assert_eq!(reset.payload, (ErrorCode::NoError as u32).to_be_bytes());
        assert!(client.connection.failed.is_none());

        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[0, 0, 8, kind::PING, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(b"12345678");
        client.send(&bytes);
        let frames = client.take();
        assert_eq!(frames[0].head.kind, kind::PING);
        assert!(frames[0].head.has(flag::ACK));
        assert_eq!(frames[0].payload, b"12345678");
    }
}
