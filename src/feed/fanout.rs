//! The live fan-out every backend runs: the registry of live subscribers (each with its own
//! bounded queue, indexed by the user it named) and the delivery of a comment to its
//! recipients. A backend embeds one [`Fanout`] under the lock it fans out under (the memory
//! feed's one mutex, the Redis reader's registry mutex), so registering, delivering and
//! moving the horizon stay atomic with whatever else that lock guards; it implements
//! [`Unregister`] on the lock's owner so a dropped subscription leaves the registry.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use tokio::sync::mpsc;

use super::{EndCause, Live, StoredComment};

/// What owns a backend's [`Fanout`] (and its lock): takes the lock and calls
/// [`Fanout::unregister`]. A subscription holds it weakly, so a dropped feed is not kept
/// alive by its subscribers.
pub(super) trait Unregister: Send + Sync {
    /// Removes subscriber `number` from the fan-out, if it is still there.
    fn unregister(&self, number: u64);
}

/// Every live subscriber of one backend instance.
pub(super) struct Fanout {
    /// Every live subscriber, by registration number.
    subscribers: HashMap<u64, Subscriber>,
    /// Registration numbers of the subscribers that named a user, by user: an addressed
    /// comment wakes only these.
    by_user: HashMap<String, Vec<u64>>,
    /// The next registration number.
    next_registration: u64,
    /// Capacity of each subscriber's queue; a subscriber that falls further behind is dropped.
    queue: usize,
}

struct Subscriber {
    user: Option<String>,
    sender: mpsc::Sender<Arc<StoredComment>>,
    /// Set before the sender is dropped to end the subscription early, so it tells why.
    ended: Arc<OnceLock<EndCause>>,
}

/// Removes a subscriber from its backend's fan-out when its subscription is dropped.
struct Registration {
    owner: Weak<dyn Unregister>,
    number: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.unregister(self.number);
        }
    }
}

impl Fanout {
    /// An empty registry whose subscribers get `queue` slots each (at least one).
    pub(super) fn new(queue: usize) -> Self {
        Self {
            subscribers: HashMap::new(),
            by_user: HashMap::new(),
            next_registration: 0,
            queue: queue.max(1),
        }
    }

    /// Registers a subscriber to `user`'s comments and the broadcasts: it receives every
    /// comment fanned out from now on. `owner` is what holds this registry (under its lock),
    /// so dropping the subscription unregisters it; the caller holds that lock now.
    pub(super) fn register(&mut self, user: Option<String>, owner: Weak<dyn Unregister>) -> Live {
        let (sender, receiver) = mpsc::channel(self.queue);
        let ended = Arc::new(OnceLock::new());
        let number = self.next_registration;
        self.next_registration += 1;
        if let Some(user) = &user {
            self.by_user.entry(user.clone()).or_default().push(number);
        }
        self.subscribers.insert(
            number,
            Subscriber {
                user,
                sender,
                ended: ended.clone(),
            },
        );
        Live {
            receiver,
            ended,
            registration: Box::new(Registration { owner, number }),
        }
    }

    /// Removes subscriber `number`, if it is still registered.
    pub(super) fn unregister(&mut self, number: u64) {
        let Some(subscriber) = self.subscribers.remove(&number) else {
            return;
        };
        if let Some(user) = subscriber.user {
            if let Some(numbers) = self.by_user.get_mut(&user) {
                numbers.retain(|n| *n != number);
                if numbers.is_empty() {
                    self.by_user.remove(&user);
                }
            }
        }
    }

    /// Queues `comment` to its recipients (a broadcast to every subscriber, an addressed
    /// comment to its user's). A full queue ends that subscriber with `Lagged`, a closed one
    /// (its subscription being dropped) just leaves; either is unregistered. The caller moves
    /// its horizon past the comment only after this returns.
    pub(super) fn fan_out(&mut self, comment: &Arc<StoredComment>) {
        // Those to unregister, after the walk: a delivery must not change the maps it walks.
        let mut gone = Vec::new();
        let mut deliver = |number: u64, subscriber: &Subscriber| match subscriber
            .sender
            .try_send(comment.clone())
        {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = subscriber.ended.set(EndCause::Lagged);
                gone.push(number);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => gone.push(number),
        };
        match &comment.comment.to {
            // Walked in place: a broadcast reaches every subscriber, so a list of their
            // numbers and a lookup of each was work per delivery.
            None => {
                for (number, subscriber) in &self.subscribers {
                    deliver(*number, subscriber);
                }
            }
            Some(to) => {
                for number in self.by_user.get(to).into_iter().flatten() {
                    if let Some(subscriber) = self.subscribers.get(number) {
                        deliver(*number, subscriber);
                    }
                }
            }
        }
        for number in gone {
            self.unregister(number);
        }
    }

    /// Ends every subscription with `cause` (they resume from their cursors) and empties the
    /// registry; dropping the senders wakes each subscriber to read the cause.
    pub(super) fn end_all(&mut self, cause: &EndCause) {
        for (_, subscriber) in self.subscribers.drain() {
            let _ = subscriber.ended.set(cause.clone());
        }
        self.by_user.clear();
    }

    /// How many subscribers are registered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::feed::Comment;

    /// An owner as a backend has one: the registry under a mutex.
    struct Owner(Mutex<Fanout>);

    impl Unregister for Owner {
        fn unregister(&self, number: u64) {
            self.0.lock().unwrap().unregister(number);
        }
    }

    fn owner(queue: usize) -> Arc<Owner> {
        Arc::new(Owner(Mutex::new(Fanout::new(queue))))
    }

    fn register(owner: &Arc<Owner>, user: Option<&str>) -> Live {
        let weak: Weak<Owner> = Arc::downgrade(owner);
        owner.0.lock().unwrap().register(user.map(Into::into), weak)
    }

    fn comment(id: u64, to: Option<&str>) -> Arc<StoredComment> {
        Arc::new(StoredComment::new(Comment {
            id,
            from: "a".into(),
            to: to.map(Into::into),
            text: id.to_string(),
            published_at_us: 0,
        }))
    }

    fn ids(live: &mut Live) -> Vec<u64> {
        std::iter::from_fn(|| live.receiver.try_recv().ok())
            .map(|c| c.comment.id)
            .collect()
    }

    #[test]
    fn broadcasts_reach_everyone_and_addressed_comments_only_their_user() {
        let owner = owner(8);
        let (mut anyone, mut bob, mut eve) = (
            register(&owner, None),
            register(&owner, Some("bob")),
            register(&owner, Some("eve")),
        );
        let mut fanout = owner.0.lock().unwrap();
        fanout.fan_out(&comment(1, None));
        fanout.fan_out(&comment(2, Some("bob")));
        fanout.fan_out(&comment(3, Some("nobody")));
        drop(fanout);
        assert_eq!(ids(&mut anyone), [1]);
        assert_eq!(ids(&mut bob), [1, 2]);
        assert_eq!(ids(&mut eve), [1]);
    }

    #[test]
    fn a_full_queue_ends_the_subscriber_as_lagged_and_unregisters_it() {
        let owner = owner(2);
        let mut slow = register(&owner, Some("bob"));
        let mut fanout = owner.0.lock().unwrap();
        for id in 1..=3 {
            fanout.fan_out(&comment(id, Some("bob")));
        }
        assert_eq!(fanout.len(), 0);
        assert!(fanout.by_user.is_empty(), "no stale index entry");
        drop(fanout);
        assert_eq!(slow.ended.get(), Some(&EndCause::Lagged));
        assert_eq!(ids(&mut slow), [1, 2], "what fitted is still read");
    }

    #[test]
    fn dropping_a_subscription_unregisters_it_and_end_all_ends_the_rest() {
        let owner = owner(2);
        let gone = register(&owner, Some("bob"));
        let kept = register(&owner, Some("bob"));
        drop(gone);
        assert_eq!(owner.0.lock().unwrap().len(), 1);
        let cause = EndCause::Unavailable {
            reason: "down".into(),
        };
        owner.0.lock().unwrap().end_all(&cause);
        assert_eq!(owner.0.lock().unwrap().len(), 0);
        assert_eq!(kept.ended.get(), Some(&cause));
        // Unregistering one already ended is harmless.
        drop(kept);
    }

    #[test]
    fn a_subscription_does_not_keep_its_owner_alive() {
        let owner = owner(2);
        let live = register(&owner, None);
        let weak = Arc::downgrade(&owner);
        drop(owner);
        assert!(
            weak.upgrade().is_none(),
            "the registration holds its owner weakly"
        );
        // And unregistering from a dropped owner is a no-op, not a panic.
        drop(live);
    }
}
