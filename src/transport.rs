//! The four ways a client follows a poll: named here, below everything
//! that counts or serves them (service, metrics, stats, api), so none of
//! those imports another just for the name.

/// The four ways a client can follow a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Poll,
    LongPoll,
    Sse,
    Ws,
}

impl Transport {
    /// Every transport, in declaration order (`as usize` indexes it).
    pub const ALL: [Transport; 4] = [
        Transport::Poll,
        Transport::LongPoll,
        Transport::Sse,
        Transport::Ws,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::LongPoll => "longpoll",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}
