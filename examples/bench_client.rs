//! A lean DNS load generator for the hit-log benchmark (`benches/hitlog.sh`): asks the names of
//! a dnsperf-style file ("name TYPE" per line, in turn, over and over) at a fixed rate over UDP,
//! and prints dnsperf's summary lines (queries sent, completed, lost, per second, run time) and
//! latency percentiles.
//!
//! Why not dnsperf alone: dnsperf spins on its sockets and takes about a whole core at
//! 100,000 queries/s, which on a 2-core machine leaves too little for the server's query worker
//! and its hit-log writer together; in production the clients are other machines. This client
//! sends and reads 32 datagrams per system call (`sendmmsg`/`recvmmsg`, as the server does) and
//! sleeps between batches (answers wait in the sockets' buffers and are read with the next
//! batch), so it costs a fraction of that. Each answer is matched to its query by socket and ID;
//! a query unanswered when its ID comes round again, or 1 s after the last send, is lost.
//! Latency is measured from the batch's send call to the read that returned the answer, so it
//! includes up to one batch interval of this client's own: use dnsperf for latency figures.
//!
//! ```sh
//! bench_client --server 127.0.0.1:5400 --names target/load/burst.txt --rate 110000 --duration 10
//! ```
//!
//! `--batch N` (1 to 32, default 32) sends N queries per call and sleeps after each: the server
//! sees them arrive N at a time, so a query may wait behind up to N-1 others. Smaller batches
//! are smoother traffic, closer to many independent devices, at more CPU for this client.
//!
//! Loopback only by intent; every run is bounded by `--duration`. Linux only.

#[cfg(target_os = "linux")]
fn main() {
    if let Err(e) = linux::run() {
        eprintln!("bench_client: {e}");
        std::process::exit(2);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("bench_client needs Linux (recvmmsg/sendmmsg)");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::str::FromStr;
    use std::time::{Duration, Instant};

    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use schooldns::server::batch::{self, BATCH, Batch};

    /// Queries in flight are tracked per socket by ID.
    const IDS: usize = 1 << 16;
    /// How long answers are awaited after the last query is sent.
    const DRAIN: Duration = Duration::from_secs(1);

    struct Options {
        server: SocketAddr,
        names: String,
        rate: f64,
        duration: Duration,
        sockets: usize,
        /// Queries per send call, and so per sleep: smaller is smoother traffic at more CPU.
        batch: usize,
    }

    fn options() -> Result<Options, String> {
        let mut server = "127.0.0.1:5400".to_string();
        let mut names = None;
        let mut rate = 10_000.0;
        let mut duration = 10.0;
        let mut sockets = 8;
        let mut batch = BATCH;
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let bad = || format!("{flag}: bad value {value:?}");
            match flag.as_str() {
                "--server" => server = value.clone(),
                "--names" => names = Some(value.clone()),
                "--rate" => rate = value.parse().map_err(|_| bad())?,
                "--duration" => duration = value.parse().map_err(|_| bad())?,
                "--sockets" => sockets = value.parse().map_err(|_| bad())?,
                "--batch" => batch = value.parse().map_err(|_| bad())?,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        if !(rate > 0.0 && duration > 0.0 && (1..=64).contains(&sockets)) {
            return Err("--rate and --duration must be positive, --sockets 1..=64".into());
        }
        if !(1..=BATCH).contains(&batch) {
            return Err(format!("--batch must be 1..={BATCH}"));
        }
        Ok(Options {
            server: server
                .parse()
                .map_err(|_| format!("bad --server {server:?}"))?,
            names: names.ok_or("--names FILE is required")?,
            rate,
            duration: Duration::from_secs_f64(duration),
            sockets,
            batch,
        })
    }

    /// The wire query for one "name TYPE" line (ID left zero, RD set), or why the line is
    /// unusable. Any type hickory knows by name is accepted, as dnsperf accepts them.
    fn query_for(line: &str) -> Result<Vec<u8>, String> {
        let mut fields = line.split_whitespace();
        let name = fields.next().ok_or("empty line")?;
        let qtype = fields.next().unwrap_or("A");
        let name = Name::from_ascii(name).map_err(|e| format!("bad name {name}: {e}"))?;
        let qtype = RecordType::from_str(&qtype.to_ascii_uppercase())
            .map_err(|_| format!("unknown type {qtype}"))?;
        let mut message = Message::new();
        message
            .set_recursion_desired(true)
            .add_query(Query::query(name, qtype));
        message.to_vec().map_err(|e| format!("cannot encode: {e}"))
    }

    /// One socket's queries in flight: the send time (ns since the start, 0 when none) by ID.
    struct Flight {
        socket: UdpSocket,
        sent_at: Vec<u64>,
        next_id: u16,
    }

    #[derive(Default)]
    struct Tally {
        sent: u64,
        completed: u64,
        lost: u64,
        latencies_us: Vec<u32>,
    }

    pub fn run() -> Result<(), String> {
        let opts = options()?;
        let text =
            std::fs::read_to_string(&opts.names).map_err(|e| format!("{}: {e}", opts.names))?;
        let mut queries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with(';') {
                continue;
            }
            queries
                .push(query_for(line).map_err(|e| format!("{}:{}: {e}", opts.names, number + 1))?);
        }
        if queries.is_empty() {
            return Err(format!("{}: no queries", opts.names));
        }
        let mut flights = Vec::new();
        for _ in 0..opts.sockets {
            let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            socket.set_nonblocking(true).map_err(|e| e.to_string())?;
            // Answers wait in the buffer for up to a batch interval: room for many batches, so
            // a late wake-up of this client never shows up as the server's loss.
            let size: libc::c_int = 4 << 20;
            // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int.
            #[allow(unsafe_code)]
            unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            flights.push(Flight {
                socket,
                sent_at: vec![0; IDS],
                next_id: 0,
            });
        }
        let mut tally = Tally::default();
        let mut batch = Batch::default();
        let mut out = Vec::with_capacity(BATCH);
        let start = Instant::now();
        let mut turn = 0usize;
        let mut next_query = 0usize;
        loop {
            let elapsed = start.elapsed();
            let sending = elapsed < opts.duration;
            if !sending && (in_flight(&flights) == 0 || elapsed >= opts.duration + DRAIN) {
                break;
            }
            if sending {
                // Send what the rate says is due by now, a batch per socket in turn.
                let due = (elapsed.as_secs_f64() * opts.rate) as u64;
                while tally.sent < due {
                    let flight = &mut flights[turn % opts.sockets];
                    turn += 1;
                    let count = (due - tally.sent).min(opts.batch as u64) as usize;
                    let now_ns = start.elapsed().as_nanos().max(1) as u64;
                    for _ in 0..count {
                        let id = flight.next_id;
                        flight.next_id = flight.next_id.wrapping_add(1);
                        if flight.sent_at[usize::from(id)] != 0 {
                            tally.lost += 1; // unanswered until its ID came round again
                        }
                        flight.sent_at[usize::from(id)] = now_ns;
                        let mut wire = queries[next_query % queries.len()].clone();
                        next_query += 1;
                        wire[..2].copy_from_slice(&id.to_be_bytes());
                        out.push((wire, opts.server));
                    }
                    let fd = flight.socket.as_raw_fd();
                    while !out.is_empty() {
                        match batch::send(fd, &mut out) {
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                wait(&flights, Duration::from_micros(50));
                            }
                            Err(e) => return Err(format!("send: {e}")),
                        }
                    }
                    tally.sent += count as u64;
                }
            }
            read_answers(&mut flights, &mut batch, &mut tally, start);
            // Sleep until the next batch is due. Answers wait in the sockets' buffers meanwhile:
            // waking for each would cost this client a context switch per answer or two.
            let next_due =
                Duration::from_secs_f64((tally.sent + opts.batch as u64) as f64 / opts.rate);
            let pause = if sending {
                next_due.saturating_sub(start.elapsed())
            } else {
                Duration::from_millis(10)
            };
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        tally.lost += in_flight(&flights);
        report(&opts, &mut tally);
        Ok(())
    }

    fn in_flight(flights: &[Flight]) -> u64 {
        flights
            .iter()
            .map(|f| f.sent_at.iter().filter(|&&t| t != 0).count() as u64)
            .sum()
    }

    /// Waits in `ppoll` until a socket is readable or `timeout` passes.
    fn wait(flights: &[Flight], timeout: Duration) {
        let mut fds: Vec<libc::pollfd> = flights
            .iter()
            .map(|f| libc::pollfd {
                fd: f.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `fds` and `ts` live on this frame for the duration of the call, and the
        // count given is `fds`' length.
        #[allow(unsafe_code)]
        unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            );
        }
    }

    /// Reads every answer queued on every socket, matching each to its query by ID.
    fn read_answers(flights: &mut [Flight], batch: &mut Batch, tally: &mut Tally, start: Instant) {
        for flight in flights.iter_mut() {
            let fd = flight.socket.as_raw_fd();
            while let Ok(received) = batch.recv(fd) {
                let now_ns = start.elapsed().as_nanos() as u64;
                for i in 0..received {
                    let (answer, _) = batch.datagram(i);
                    if answer.len() < 12 || answer[2] & 0x80 == 0 {
                        continue;
                    }
                    let id = usize::from(u16::from_be_bytes([answer[0], answer[1]]));
                    let sent = std::mem::replace(&mut flight.sent_at[id], 0);
                    if sent != 0 {
                        tally.completed += 1;
                        let micros = (now_ns.saturating_sub(sent) / 1000).min(u64::from(u32::MAX));
                        tally.latencies_us.push(micros as u32);
                    }
                }
                if received < BATCH {
                    break;
                }
            }
        }
    }

    fn report(opts: &Options, tally: &mut Tally) {
        let percent = |n: u64| 100.0 * n as f64 / tally.sent.max(1) as f64;
        println!("  Queries sent:         {}", tally.sent);
        println!(
            "  Queries completed:    {} ({:.2}%)",
            tally.completed,
            percent(tally.completed)
        );
        println!(
            "  Queries lost:         {} ({:.2}%)",
            tally.lost,
            percent(tally.lost)
        );
        // Over the sending time, as dnsperf counts them.
        let run_time = opts.duration.as_secs_f64();
        println!(
            "  Queries per second:   {:.6}",
            tally.completed as f64 / run_time
        );
        println!("  Run time (s):         {run_time:.6}");
        tally.latencies_us.sort_unstable();
        let at = |q: f64| {
            let v = &tally.latencies_us;
            if v.is_empty() {
                0
            } else {
                v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
            }
        };
        println!(
            "  Latency (us):         p50 {} p99 {} p99.9 {}",
            at(0.5),
            at(0.99),
            at(0.999)
        );
    }
}
