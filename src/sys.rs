//! The few calls into libc the lab needs, each behind a safe function with a `// SAFETY:`
//! line on its block: CPU time (`getrusage`, of this process or its ended children, microsecond resolution, where `/proc/self/stat`
//! counts 10 ms ticks, too coarse for CPU per delivered comment over a short cell), the
//! open-files limit, signalling a child, the kernel's own TCP counts (`TCP_INFO`), and
//! `TCP_USER_TIMEOUT`, so a server notices a vanished peer in seconds; `SO_LINGER` 0 and
//! `shutdown`, for client-side faults.

/// User plus system CPU time of this process, in seconds; 0 if the kernel will not say.
pub fn cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

/// User plus system CPU time of this process's children that have ended and been waited
/// for, in seconds (a reference client run to its end, say); 0 if the kernel will not say.
pub fn children_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_CHILDREN)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for getrusage to fill.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Raises the soft open-files limit to the hard one (each connection is a descriptor) and
/// returns the soft limit in force afterwards (1,024 if it cannot be read).
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit for setrlimit to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    limit.rlim_cur
}

/// Sends SIGTERM to process `pid` (a child this process started), asking it to shut down
/// cleanly where tokio's `Child::kill` would send SIGKILL.
pub fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes any pid and a valid signal number; it touches no memory of ours.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// The kernel's own count for a TCP socket (Linux `TCP_INFO`): a cross-check of the
/// stream-level count, and the segment counts behind the TCP/IP overhead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelCount {
    /// Payload bytes the peer acknowledged (`tcpi_bytes_acked`).
    pub bytes_acked: u64,
    /// Payload bytes received (`tcpi_bytes_received`).
    pub bytes_received: u64,
    /// Segments sent (`tcpi_segs_out`), each with about 52 B of TCP/IP headers on loopback.
    pub segs_out: u64,
    /// Segments received (`tcpi_segs_in`).
    pub segs_in: u64,
}

/// Reads `TCP_INFO` for a connected socket; `None` where the kernel does not provide it.
pub fn kernel_count(socket: &impl std::os::fd::AsRawFd) -> Option<KernelCount> {
    kernel_count_fd(socket.as_raw_fd())
}

/// `TCP_INFO` of a raw socket descriptor, which must be a live TCP socket.
#[cfg(target_os = "linux")]
pub fn kernel_count_fd(fd: std::os::fd::RawFd) -> Option<KernelCount> {
    // SAFETY: an all-zero `tcp_info` is a valid value of this plain C struct.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a valid, writable `tcp_info` and `len` holds its size, as getsockopt
    // requires; the fd is borrowed from a live socket.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| KernelCount {
        bytes_acked: info.tcpi_bytes_acked,
        bytes_received: info.tcpi_bytes_received,
        segs_out: u64::from(info.tcpi_segs_out),
        segs_in: u64::from(info.tcpi_segs_in),
    })
}

/// `TCP_INFO` is Linux-only.
#[cfg(not(target_os = "linux"))]
pub fn kernel_count_fd(_fd: std::os::fd::RawFd) -> Option<KernelCount> {
    None
}

/// Sets `TCP_USER_TIMEOUT` on a TCP socket: once sent data stays unacknowledged this long,
/// the kernel drops the connection with `ETIMEDOUT` instead of retransmitting for about 15
/// minutes (`tcp_retries2`). Zero restores the kernel's default.
#[cfg(target_os = "linux")]
pub fn set_user_timeout(
    socket: &impl std::os::fd::AsRawFd,
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    let millis = libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: `millis` is a valid `c_uint` for setsockopt to read and the length is its size;
    // the fd is borrowed from a live socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&millis as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `TCP_USER_TIMEOUT` is Linux-only; elsewhere the kernel's default stays.
#[cfg(not(target_os = "linux"))]
pub fn set_user_timeout(
    _socket: &impl std::os::fd::AsRawFd,
    _timeout: std::time::Duration,
) -> std::io::Result<()> {
    Ok(())
}

/// Sets `SO_LINGER` to on, zero seconds, on a live socket: its close then sends an RST at
/// once and discards unsent data, instead of the orderly FIN. A client-side fault uses it to
/// abort a connection the way a crashed process or a middlebox would.
pub fn set_linger_zero(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid `struct linger` for setsockopt to read and the length is
    // its size; the caller passes the descriptor of a live socket it owns.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Shuts down the sending half of a live socket: the peer gets a FIN now, whatever the
/// socket's owner does later.
pub fn shutdown_write(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY: shutdown(2) takes a descriptor and a constant; it touches no memory of ours,
    // and the caller passes the descriptor of a live socket it owns.
    if unsafe { libc::shutdown(fd, libc::SHUT_WR) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether `error` is the kernel giving up on an unacknowledged peer (`ETIMEDOUT`, as
/// `TCP_USER_TIMEOUT` reports it).
pub fn is_peer_timeout(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(libc::ETIMEDOUT)
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` on a socket about to be bound to a source address: the
/// port is then chosen at `connect`, unique per destination, so one source address serves
/// 28k connections to each server port instead of 28k in all.
pub fn bind_address_no_port(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int and the length passed is its size; setsockopt reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `std::time::Instant` reads on Linux, shared by
/// every process on the machine, so a worker process can learn a schedule's start instant.
pub fn monotonic_ns() -> u64 {
    // SAFETY: an all-zero `timespec` is a valid value of this plain C struct.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `now` is a valid, writable timespec for clock_gettime to fill.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
    }
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_monotonic_clock_is_the_one_instant_reads() {
        // Instant's offset from CLOCK_MONOTONIC, taken twice a moment apart, is the same:
        // they are one clock.
        let offset = || {
            let (instant, ns) = (std::time::Instant::now(), super::monotonic_ns());
            (instant, ns)
        };
        let (a, a_ns) = offset();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (b, b_ns) = offset();
        let by_instant = b.duration_since(a).as_nanos() as i128;
        let by_clock = i128::from(b_ns - a_ns);
        assert!(
            (by_instant - by_clock).abs() < 1_000_000,
            "{by_instant} vs {by_clock}"
        );
    }

    #[test]
    fn cpu_time_grows_and_the_file_limit_is_at_least_the_default() {
        let before = super::cpu_seconds();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_seconds() > before);
        assert!(super::raise_open_files_limit() >= 1024);
    }

    #[test]
    fn a_connected_socket_has_kernel_counts() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let count = super::kernel_count(&client).expect("Linux provides TCP_INFO");
        assert_eq!(count.bytes_received, 0);
    }

    #[test]
    fn the_user_timeout_is_set_as_asked() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        super::set_user_timeout(&client, std::time::Duration::from_millis(2500)).unwrap();
        let mut value: libc::c_uint = 0;
        let mut len = std::mem::size_of::<libc::c_uint>() as libc::socklen_t;
        // SAFETY: `value` is a writable `c_uint` and `len` holds its size; the fd is live.
        let rc = unsafe {
            libc::getsockopt(
                client.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_USER_TIMEOUT,
                (&mut value as *mut libc::c_uint).cast(),
                &mut len,
            )
        };
        assert_eq!((rc, value), (0, 2500));
    }
}
