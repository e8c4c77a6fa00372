//! How a worker thread waits: for an instant, or for an instant or a socket, whichever
//! comes first.
//!
//! When no socket needs watching (every connection is idle or will be read when its next
//! send is due) the thread sleeps with `nanosleep`: one system call, no wake-up for a
//! response that is already on its way into the socket buffer (its kernel timestamp says
//! when it arrived). Otherwise it waits in `epoll` with a `timerfd` for the deadline, since
//! epoll's own timeout has only millisecond resolution. Worker threads lower their timer
//! slack ([`tighten_timer_slack`]) so the kernel does not defer those wake-ups by 50 µs.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// Token of the timer in epoll events.
const TIMER: u64 = u64::MAX;

/// What epoll should report for a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Nothing: not registered (or disabled).
    None,
    /// Data to read (or the peer closed).
    Read,
    /// Room to write (a connect finishing, or a long request).
    Write,
}

impl Interest {
    fn flags(self) -> EpollFlags {
        match self {
            Interest::None => EpollFlags::empty(),
            Interest::Read => EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
            Interest::Write => EpollFlags::EPOLLOUT,
        }
    }
}

/// A thread's epoll instance and deadline timer.
#[derive(Debug)]
pub(crate) struct Waiter {
    epoll: Epoll,
    timer: TimerFd,
    /// The deadline the timer is set for, if any.
    timer_at: Option<Instant>,
    events: Vec<EpollEvent>,
    ready: usize,
}

impl Waiter {
    pub fn new(capacity: usize) -> std::io::Result<Waiter> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        epoll.add(timer.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, TIMER))?;
        Ok(Waiter {
            epoll,
            timer,
            timer_at: None,
            events: vec![EpollEvent::empty(); capacity.clamp(8, 1024)],
            ready: 0,
        })
    }

    /// Registers a new socket (interest `None` registers nothing yet).
    pub fn add(&self, fd: impl AsFd, token: usize, interest: Interest) -> std::io::Result<()> {
        self.epoll
            .add(fd, EpollEvent::new(interest.flags(), token as u64))?;
        Ok(())
    }

    /// Changes what is watched on a registered socket (level-triggered).
    pub fn modify(&self, fd: impl AsFd, token: usize, interest: Interest) -> std::io::Result<()> {
        let mut ev = EpollEvent::new(interest.flags(), token as u64);
        self.epoll.modify(fd, &mut ev)?;
        Ok(())
    }

    /// Removes a socket before it is closed.
    pub fn remove(&self, fd: impl AsFd) {
        let _ = self.epoll.delete(fd);
    }

    /// Sleeps until `deadline` without watching sockets.
    pub fn sleep_until(&mut self, deadline: Instant) {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        self.ready = 0;
    }

    /// Waits until a watched socket is ready or `deadline` passes; the ready tokens are then
    /// in [`Waiter::ready`].
    pub fn wait_until(&mut self, deadline: Instant) -> std::io::Result<()> {
        let now = Instant::now();
        let timeout = if deadline <= now {
            EpollTimeout::ZERO
        } else {
            if self.timer_at != Some(deadline) {
                let after = (deadline - now).max(Duration::from_nanos(1));
                self.timer.set(
                    Expiration::OneShot(TimeSpec::from_duration(after)),
                    TimerSetTimeFlags::empty(),
                )?;
                self.timer_at = Some(deadline);
            }
            EpollTimeout::NONE
        };
        self.ready = loop {
            match self.epoll.wait(&mut self.events, timeout) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if self.events[..self.ready].iter().any(|e| e.data() == TIMER) {
            // Drain the expiration so the level-triggered timer goes quiet.
            let _ = self.timer.wait();
            self.timer_at = None;
        }
        Ok(())
    }

    /// Tokens of the sockets the last wait reported, with whether they can be read
    /// (or hung up) and written.
    pub fn ready(&self) -> impl Iterator<Item = (usize, bool, bool)> + '_ {
        self.events[..self.ready]
            .iter()
            .filter(|e| e.data() != TIMER)
            .map(|e| {
                let f = e.events();
                let hup = f.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
                (
                    e.data() as usize,
                    hup || f.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP),
                    hup || f.contains(EpollFlags::EPOLLOUT),
                )
            })
    }
}

/// Lowers the calling thread's timer slack to 1 µs so timed wake-ups are not deferred by
/// the kernel's default 50 µs. Best effort.
pub fn tighten_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1_000);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_wakes_close_to_its_deadline() {
        tighten_timer_slack();
        let mut w = Waiter::new(8).unwrap();
        for _ in 0..5 {
            let deadline = Instant::now() + Duration::from_millis(3);
            w.wait_until(deadline).unwrap();
            let now = Instant::now();
            assert!(now >= deadline, "woke before the deadline");
            // Generous: the machine is loaded; epoll's own timeout would be up to 1 ms late.
            assert!(now - deadline < Duration::from_millis(50));
            assert_eq!(w.ready().count(), 0);
        }
    }
}
