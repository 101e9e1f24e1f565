//! Conversation-level norms: the greeting, the farewell and the reply time.
//!
//! The lexicon checker judges one message at a time. Three norms can only be judged across a
//! conversation:
//!
//! * 有声服务·来时有迎声: the agent's first reply opens with a greeting ("您好,请问有什么可以帮您");
//! * 有声服务·离开有送声: the agent's last reply before the conversation ends says goodbye ("请慢走",
//!   "再见", "谢谢您的合作");
//! * 及时回复用户咨询,不拖延用户时间: a customer's question does not wait long for an answer.
//!
//! [`Conversations`] tracks every conversation one liyu instance sees. It is synchronous and never
//! reads a clock: every call takes `now` as an [`Instant`], so the async glue can drive it with tokio's
//! paused clock in tests and sleep exactly until [`Conversations::next_deadline`] in production.
//!
//! # Resource usage
//! Per conversation: its id (once, shared by the indexes below), a few instants and flags, and the
//! agent's last message only when that message has no farewell (capped at [`MAX_STORED_CHARS`]
//! characters). Deadlines and idle times are kept in ordered sets, so every call costs `O(log n)` in
//! the number of conversations plus the work it returns; nothing scans all conversations. A
//! conversation idle for [`Settings::forget_after`] is dropped at the next call of any method.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::check::normalize::normalize_into;
use crate::check::{Category, Finding, Severity};

/// The longest agent message kept for a farewell span, in characters. A longer message is judged on
/// its whole text, but its span and `matched` cover only this many leading characters, so one huge
/// message cannot make a conversation's state large.
pub const MAX_STORED_CHARS: usize = 2_000;

const GREETING_RULE: &str = "conversation.greeting";
const FAREWELL_RULE: &str = "conversation.farewell";
const SLOW_REPLY_RULE: &str = "conversation.slow-reply";

const GREETING_SUGGESTIONS: [&str; 2] = ["您好,请问有什么可以帮您?", "您好,很高兴为您服务"];
const FAREWELL_SUGGESTIONS: [&str; 3] =
    ["请慢走,再见", "谢谢您的合作,再见", "请问还有什么可以帮您?"];
const SLOW_REPLY_SUGGESTIONS: [&str; 2] = ["让您久等了,非常抱歉", "请稍等,马上为您处理"];

const DEFAULT_GREETINGS: &[&str] = &[
    "您好",
    "你好",
    "早上好",
    "早安",
    "上午好",
    "中午好",
    "下午好",
    "晚上好",
    "欢迎",
    "很高兴为您服务",
    "很高兴为你服务",
    "为您服务",
    "有什么可以帮",
    "有什么能帮",
    "有什么需要帮",
    "请问有什么",
    "哈喽",
    "嗨",
    "在呢",
    "hi",
    "hello",
    "hey",
];

const DEFAULT_FAREWELLS: &[&str] = &[
    "再见",
    "再会",
    "慢走",
    "感谢",
    "谢谢",
    "祝您",
    "祝你",
    "欢迎再次",
    "欢迎下次",
    "欢迎您再次",
    "欢迎您下次",
    "还有什么可以帮",
    "还有什么能帮",
    "还有什么需要",
    "还有其他问题",
    "还有其他需要",
    "还有别的问题",
    "生活愉快",
    "拜拜",
    "期待",
    "bye",
    "goodbye",
];

/// Settings, from the `[conversation]` section of the config.
///
/// A duration too large to add to an [`Instant`] (such as [`Duration::MAX`]) means "never": no nudge,
/// no slow-reply finding, or no forgetting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Nudge the agent when a customer has waited this long (default 30 s).
    pub nudge_after: Duration,
    /// Record a slow_reply finding when a customer has waited this long (default 60 s).
    pub reply_sla: Duration,
    /// Forms (normalised like lexicon forms) any of which makes a message a greeting; default list:
    /// 您好 你好 早上好 早安 上午好 中午好 下午好 晚上好 欢迎 很高兴为您服务 很高兴为你服务 为您服务
    /// 有什么可以帮 有什么能帮 有什么需要帮 请问有什么 哈喽 嗨 在呢 hi hello hey.
    ///
    /// A form is found anywhere in the normalised message (traditional characters, full-width letters,
    /// spaces and punctuation do not matter), except that a form made only of ASCII letters and digits
    /// must be a whole word: "hi" greets in "Hi,您好" but not in "this".
    pub greetings: Vec<String>,
    /// Forms any of which makes a message a farewell; default: 再见 再会 慢走 感谢 谢谢 祝您 祝你 欢迎再次
    /// 欢迎下次 欢迎您再次 欢迎您下次 还有什么可以帮 还有什么能帮 还有什么需要 还有其他问题 还有其他需要
    /// 还有别的问题 生活愉快 拜拜 期待 bye goodbye. Matched like [`greetings`](Settings::greetings).
    pub farewells: Vec<String>,
    /// Conversations with no activity for this long are forgotten (default 1 hour) so memory stays
    /// bounded. Keep it well above `reply_sla`: a conversation forgotten while its customer waits gets
    /// no further nudge or slow-reply finding.
    pub forget_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nudge_after: Duration::from_secs(30),
            reply_sla: Duration::from_secs(60),
            greetings: DEFAULT_GREETINGS.iter().map(|s| s.to_string()).collect(),
            farewells: DEFAULT_FAREWELLS.iter().map(|s| s.to_string()).collect(),
            forget_after: Duration::from_secs(60 * 60),
        }
    }
}

/// Something the glue must do now.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Tell the agent(s) of `conversation` that the customer has been waiting `waited`.
    Nudge {
        /// The conversation id.
        conversation: String,
        /// How long the customer has waited at the poll that produced this event.
        waited: Duration,
    },
    /// Record (and show) a slow_reply finding: the customer waited past the SLA.
    SlowReply {
        /// The conversation id.
        conversation: String,
        /// How long the customer has waited at the poll that produced this event.
        waited: Duration,
        /// The `conversation.slow-reply` finding (empty span: it is about no text).
        finding: Finding,
    },
}

/// The two things a running reply clock can become due for. The order is the order in which events
/// due at the same instant are returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Nudge,
    SlowReply,
}

/// One pending event of one conversation, ordered by when it is due.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    conversation: Arc<str>,
    due: Due,
}

/// The state of one conversation.
#[derive(Debug)]
struct Conversation {
    /// When the first unanswered customer message arrived; `None` while nobody waits.
    waiting_since: Option<Instant>,
    /// Whether this wait has had its nudge / slow-reply event (each comes once per wait).
    nudged: bool,
    reported: bool,
    /// The latest customer or agent message; the key of this conversation in `Conversations::idle`.
    last_activity: Instant,
    /// Whether the agent has written a message with something to read in it.
    agent_wrote: bool,
    /// The agent's last such message (capped) when it has no farewell; `None` when it has one, so a
    /// conversation that is going well stores no text at all.
    unsaid_farewell: Option<Box<str>>,
}

/// Forms normalised once, for matching against normalised messages.
#[derive(Debug)]
struct Forms {
    /// Forms with a CJK (or other non-ASCII) character: found anywhere in the normalised view.
    anywhere: Vec<String>,
    /// Forms of ASCII letters and digits only: must be whole words, or "hi" would greet in "this".
    words: Vec<String>,
}

impl Forms {
    fn new(forms: &[String]) -> Forms {
        let mut anywhere = Vec::new();
        let mut words = Vec::new();
        let mut buf = String::new();
        for form in forms {
            normalize_into(form, &mut buf);
            // A form that normalises to nothing ("!!") would match every message.
            if buf.is_empty() {
                continue;
            }
            let list = if buf.bytes().all(|b| b.is_ascii_alphanumeric()) {
                &mut words
            } else {
                &mut anywhere
            };
            if !list.contains(&buf) {
                list.push(buf.clone());
            }
        }
        Forms { anywhere, words }
    }

    /// Whether `original`, whose normalised view is `view`, contains one of the forms. `scratch` is
    /// a reusable buffer.
    fn found_in(&self, original: &str, view: &str, scratch: &mut String) -> bool {
        if self.anywhere.iter().any(|f| view.contains(f.as_str())) {
            return true;
        }
        if self.words.is_empty() || !view.bytes().any(|b| b.is_ascii_alphanumeric()) {
            return false;
        }
        // The view drops spaces and punctuation, which are exactly the word boundaries, so ASCII
        // words are looked for in the normalised view of each run of the original between them.
        // Letters of any width are alphanumeric, so "ｈｉ，" splits like "hi,".
        original
            .split(|c: char| !c.is_alphanumeric())
            .filter(|piece| !piece.is_empty())
            .any(|piece| {
                normalize_into(piece, scratch);
                self.words.iter().any(|w| contains_word(scratch, w))
            })
    }
}

/// Whether `word` (ASCII alphanumeric) occurs in `text` with no ASCII letter or digit either side.
/// Chinese characters count as boundaries: "hi您好" greets.
fn contains_word(text: &str, word: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(word).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + word.len()).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

/// A finding whose span is the whole of `text`.
fn whole_text_finding(
    rule: &str,
    category: Category,
    text: &str,
    message: String,
    suggestions: &[&str],
) -> Finding {
    Finding {
        rule: rule.to_string(),
        category,
        severity: Severity::Warn,
        start: 0,
        end: text.encode_utf16().count(),
        matched: text.to_string(),
        message,
        suggestions: suggestions.iter().map(|s| s.to_string()).collect(),
        fix: None,
        bytes: 0..text.len(),
    }
}

/// The first `MAX_STORED_CHARS` characters of `text`.
fn capped(text: &str) -> &str {
    match text.char_indices().nth(MAX_STORED_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// All conversations seen by one liyu instance.
///
/// Conversations are keyed by the id the glue gives them; a conversation starts when either side
/// first writes in it and ends with [`end`](Conversations::end) or after
/// [`forget_after`](Settings::forget_after) without activity. A message in a forgotten or ended
/// conversation starts it afresh (so the agent's next reply is a first reply again).
#[derive(Debug)]
pub struct Conversations {
    settings: Settings,
    greetings: Forms,
    farewells: Forms,
    conversations: HashMap<Arc<str>, Conversation>,
    /// Pending nudge and slow-reply events of running clocks, earliest first.
    deadlines: BTreeSet<Deadline>,
    /// Every conversation by its last activity, least recent first, to forget idle ones without a
    /// scan.
    idle: BTreeSet<(Instant, Arc<str>)>,
    /// Reused buffers for normalised views, so judging a message allocates nothing in the common case.
    view: String,
    scratch: String,
}

impl Conversations {
    /// Track conversations under `settings`; greeting and farewell forms are normalised here, once.
    pub fn new(settings: Settings) -> Self {
        Conversations {
            greetings: Forms::new(&settings.greetings),
            farewells: Forms::new(&settings.farewells),
            settings,
            conversations: HashMap::new(),
            deadlines: BTreeSet::new(),
            idle: BTreeSet::new(),
            view: String::new(),
            scratch: String::new(),
        }
    }

    /// A customer wrote in `conversation` at `now`: starts the reply clock if it is not already running
    /// (the wait is measured from the first unanswered customer message).
    pub fn customer_message(&mut self, conversation: &str, now: Instant) {
        self.forget_idle(now);
        let key = self.touch(conversation, now);
        let conv = self
            .conversations
            .get_mut(&key)
            .expect("touch inserts the conversation");
        if conv.waiting_since.is_some() {
            // Later messages of the same wait do not reset it: the customer has waited since the first.
            return;
        }
        conv.waiting_since = Some(now);
        conv.nudged = false;
        conv.reported = false;
        for (due, after) in [
            (Due::Nudge, self.settings.nudge_after),
            (Due::SlowReply, self.settings.reply_sla),
        ] {
            if let Some(at) = now.checked_add(after) {
                self.deadlines.insert(Deadline {
                    at,
                    conversation: key.clone(),
                    due,
                });
            }
        }
    }

    /// Since when the customer of `conversation` has been waiting for a reply, if they are: the glue
    /// reads it just before [`agent_message`](Conversations::agent_message) to measure reply times.
    pub fn waiting_since(&self, conversation: &str) -> Option<Instant> {
        self.conversations.get(conversation)?.waiting_since
    }

    /// An agent wrote `text` in `conversation` at `now`: stops the reply clock, and returns the
    /// conversation findings for this message: a `greeting` finding (rule id "conversation.greeting",
    /// category Greeting, severity Warn, span = the whole message, message citing 有声服务·来时有迎声)
    /// when this is the agent's first message in the conversation and it contains no greeting form.
    /// Returns an empty Vec otherwise.
    ///
    /// A message with nothing to read (empty, or only emoji, punctuation and spaces: a sticker, a
    /// "👍") stops the clock but is not judged, and does not count as the first or the last message.
    pub fn agent_message(&mut self, conversation: &str, text: &str, now: Instant) -> Vec<Finding> {
        self.forget_idle(now);
        let key = self.touch(conversation, now);
        self.stop_clock(&key);

        normalize_into(text, &mut self.view);
        if self.view.is_empty() {
            return Vec::new();
        }
        let conv = self
            .conversations
            .get_mut(&key)
            .expect("touch inserts the conversation");
        let first = !conv.agent_wrote;
        conv.agent_wrote = true;
        // Judged on the whole text now (a farewell is usually at the end, past any cap); only the
        // text needed for a later finding is kept.
        conv.unsaid_farewell = if self.farewells.found_in(text, &self.view, &mut self.scratch) {
            None
        } else {
            Some(capped(text).into())
        };

        if first && !self.greetings.found_in(text, &self.view, &mut self.scratch) {
            return vec![whole_text_finding(
                GREETING_RULE,
                Category::Greeting,
                text,
                "缺少迎声:会话中的第一条回复没有问候客户,违反有声服务“来时有迎声”;接待客户时应先问候,如“您好,请问有什么可以帮您”".to_string(),
                &GREETING_SUGGESTIONS,
            )];
        }
        Vec::new()
    }

    /// The conversation ended (configured end event, or the connection carrying it closed): returns a
    /// `farewell` finding (rule "conversation.farewell", category Farewell, severity Warn, span over the
    /// agent's last message text, at most [`MAX_STORED_CHARS`] characters of it) when the agent wrote
    /// at least one message and the last one contains no farewell form; forgets the conversation.
    pub fn end(&mut self, conversation: &str, now: Instant) -> Vec<Finding> {
        // Forget idle conversations first, so that whether an hour-old conversation still gets its
        // farewell finding does not depend on whether a poll happened in between.
        self.forget_idle(now);
        let Some(conv) = self.forget(conversation) else {
            return Vec::new();
        };
        match conv.unsaid_farewell {
            Some(last) => vec![whole_text_finding(
                FAREWELL_RULE,
                Category::Farewell,
                &last,
                "缺少送声:会话结束时客服的最后一条回复没有道别,违反有声服务“离开有送声”;客户离开时应使用“请慢走”“再见”“谢谢您的合作”等文明用语".to_string(),
                &FAREWELL_SUGGESTIONS,
            )],
            None => Vec::new(),
        }
    }

    /// What is due at `now`: a Nudge once per wait when the wait reaches nudge_after, and a SlowReply
    /// once per wait when it reaches reply_sla (finding: rule "conversation.slow-reply", category
    /// SlowReply, severity Warn, empty span, message citing 及时回复 with the wait in seconds). Also
    /// forgets idle conversations.
    ///
    /// Events come in the order they fell due; a nudge and a slow reply due at the same instant come
    /// nudge first.
    pub fn poll(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        while self.deadlines.first().is_some_and(|d| d.at <= now) {
            let Some(deadline) = self.deadlines.pop_first() else {
                break;
            };
            // Deadlines are removed with their clock, so each one belongs to a running clock.
            let Some(conv) = self.conversations.get_mut(&deadline.conversation) else {
                debug_assert!(false, "deadline of a forgotten conversation");
                continue;
            };
            let Some(since) = conv.waiting_since else {
                debug_assert!(false, "deadline of a stopped clock");
                continue;
            };
            let waited = now.saturating_duration_since(since);
            let conversation = deadline.conversation.to_string();
            events.push(match deadline.due {
                Due::Nudge => {
                    conv.nudged = true;
                    Event::Nudge {
                        conversation,
                        waited,
                    }
                }
                Due::SlowReply => {
                    conv.reported = true;
                    Event::SlowReply {
                        conversation,
                        waited,
                        finding: slow_reply_finding(waited),
                    }
                }
            });
        }
        // After the events, so a conversation idle exactly as long as its SLA still gets its finding.
        self.forget_idle(now);
        events
    }

    /// The next instant at which `poll` would return something (None when no clock is running), so the
    /// glue can sleep exactly until then.
    ///
    /// Forgetting idle conversations returns nothing and so has no deadline: it happens at whichever
    /// call comes next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|d| d.at)
    }

    /// How many conversations are tracked.
    pub fn len(&self) -> usize {
        self.conversations.len()
    }

    /// Whether no conversation is tracked.
    pub fn is_empty(&self) -> bool {
        self.conversations.is_empty()
    }

    /// Records activity in `conversation` at `now`, creating it if needed; returns its shared key.
    fn touch(&mut self, conversation: &str, now: Instant) -> Arc<str> {
        if let Some((key, conv)) = self.conversations.get_key_value(conversation) {
            let key = key.clone();
            let last = conv.last_activity;
            // Never move backwards, should the glue hand in instants out of order.
            let now = now.max(last);
            self.idle.remove(&(last, key.clone()));
            self.idle.insert((now, key.clone()));
            if let Some(conv) = self.conversations.get_mut(&key) {
                conv.last_activity = now;
            }
            return key;
        }
        let key: Arc<str> = Arc::from(conversation);
        self.conversations.insert(
            key.clone(),
            Conversation {
                waiting_since: None,
                nudged: false,
                reported: false,
                last_activity: now,
                agent_wrote: false,
                unsaid_farewell: None,
            },
        );
        self.idle.insert((now, key.clone()));
        key
    }

    /// Stops the reply clock of `key`, dropping its pending events.
    fn stop_clock(&mut self, key: &Arc<str>) {
        let Some(conv) = self.conversations.get_mut(key) else {
            return;
        };
        let Some(since) = conv.waiting_since.take() else {
            return;
        };
        for (due, after, done) in [
            (Due::Nudge, self.settings.nudge_after, conv.nudged),
            (Due::SlowReply, self.settings.reply_sla, conv.reported),
        ] {
            if done {
                continue;
            }
            if let Some(at) = since.checked_add(after) {
                self.deadlines.remove(&Deadline {
                    at,
                    conversation: key.clone(),
                    due,
                });
            }
        }
        conv.nudged = false;
        conv.reported = false;
    }

    /// Removes `conversation` and everything indexing it; returns its state.
    fn forget(&mut self, conversation: &str) -> Option<Conversation> {
        let key = self.conversations.get_key_value(conversation)?.0.clone();
        self.stop_clock(&key);
        let conv = self.conversations.remove(&key)?;
        self.idle.remove(&(conv.last_activity, key));
        Some(conv)
    }

    /// Forgets every conversation with no activity for `forget_after` at `now`.
    fn forget_idle(&mut self, now: Instant) {
        while self.idle.first().is_some_and(|(last, _)| {
            now.saturating_duration_since(*last) >= self.settings.forget_after
        }) {
            let Some((_, key)) = self.idle.pop_first() else {
                break;
            };
            self.stop_clock(&key);
            self.conversations.remove(&key);
        }
    }
}

/// The finding for a customer who has waited `waited` without a reply.
fn slow_reply_finding(waited: Duration) -> Finding {
    Finding {
        rule: SLOW_REPLY_RULE.to_string(),
        category: Category::SlowReply,
        severity: Severity::Warn,
        start: 0,
        end: 0,
        matched: String::new(),
        message: format!(
            "回复不及时:客户已等待 {} 秒仍未得到回复,违反“及时回复用户咨询,不拖延用户时间”(有声服务·询问有答声);应尽快回复,暂时无法答复时先告知客户“请稍等”",
            waited.as_secs()
        ),
        suggestions: SLOW_REPLY_SUGGESTIONS.iter().map(|s| s.to_string()).collect(),
        fix: None,
        bytes: 0..0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn convs() -> Conversations {
        Conversations::new(Settings::default())
    }

    /// The kinds of events, with conversation and wait, without the finding details.
    fn summary(events: &[Event]) -> Vec<(&'static str, String, Duration)> {
        events
            .iter()
            .map(|e| match e {
                Event::Nudge {
                    conversation,
                    waited,
                } => ("nudge", conversation.clone(), *waited),
                Event::SlowReply {
                    conversation,
                    waited,
                    ..
                } => ("slow", conversation.clone(), *waited),
            })
            .collect()
    }

    #[test]
    fn conversations_can_move_between_threads() {
        fn assert<T: Send + Sync>() {}
        assert::<Conversations>();
        assert::<Event>();
        assert::<Settings>();
    }

    // ---- greeting -------------------------------------------------------------------------------

    #[test]
    fn first_message_without_greeting_is_a_finding_over_the_whole_message() {
        let mut c = convs();
        let t0 = Instant::now();
        let text = "订单已经发货了,请注意查收。";
        let f = c.agent_message("c1", text, t0);
        assert_eq!(f.len(), 1);
        let f = &f[0];
        assert_eq!(f.rule, "conversation.greeting");
        assert_eq!(f.category, Category::Greeting);
        assert_eq!(f.severity, Severity::Warn);
        assert_eq!(f.start, 0);
        assert_eq!(f.end, text.chars().count());
        assert_eq!(f.bytes, 0..text.len());
        assert_eq!(f.matched, text);
        assert!(f.message.contains("来时有迎声"), "{}", f.message);
        assert!(f.message.contains("有声服务"), "{}", f.message);
        assert_eq!(
            f.suggestions,
            vec!["您好,请问有什么可以帮您?", "您好,很高兴为您服务"]
        );
        assert_eq!(f.fix, None);
    }

    #[test]
    fn first_message_with_greeting_is_fine() {
        let t0 = Instant::now();
        for text in [
            "您好,请问有什么可以帮您?",
            "你好呀,订单已经发货了",
            "早上好!这边帮您查一下",
            "晚上好",
            "欢迎光临本店",
            "很高兴为您服务,请问您遇到了什么问题",
            "亲,请问有什么需要?",
            "在呢,亲",
            "客服小王为您服务",
        ] {
            let mut c = convs();
            assert_eq!(c.agent_message("c", text, t0), vec![], "{text}");
        }
    }

    #[test]
    fn only_the_first_agent_message_is_judged() {
        let t0 = Instant::now();
        let mut c = convs();
        assert!(c.agent_message("c", "您好", t0).is_empty());
        assert!(c.agent_message("c", "订单已发货", t0 + secs(5)).is_empty());

        let mut c = convs();
        assert_eq!(c.agent_message("c", "订单已发货", t0).len(), 1);
        assert!(c
            .agent_message("c", "物流单号稍后发您", t0 + secs(5))
            .is_empty());
    }

    #[test]
    fn customer_messages_do_not_use_up_the_first_reply() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        c.customer_message("c", t0 + secs(1));
        assert_eq!(c.agent_message("c", "订单已发货", t0 + secs(2)).len(), 1);
    }

    #[test]
    fn greeting_in_traditional_and_full_width_characters() {
        let t0 = Instant::now();
        for text in [
            "歡迎光臨,請問有什麼可以幫您?",
            "請問有什麼需要",
            "ＨＥＬＬＯ！訂單已發貨",
            "Ｈｉ，親",
            "您 好 ,這邊幫您查詢",
            "很高興為您服務",
        ] {
            let mut c = convs();
            assert_eq!(c.agent_message("c", text, t0), vec![], "{text}");
        }
        let mut c = convs();
        let f = c.agent_message("c", "訂單已發貨,請注意查收", t0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].matched, "訂單已發貨,請注意查收");
    }

    #[test]
    fn ascii_greetings_must_be_whole_words() {
        let t0 = Instant::now();
        for text in ["Hi there", "hi您好", "HELLO,这边帮您处理", "hey!", "嗨,亲"] {
            let mut c = convs();
            assert_eq!(c.agent_message("c", text, t0), vec![], "{text}");
        }
        for text in [
            "this is shipping now",
            "Othello 已到货",
            "which one",
            "hello123",
        ] {
            let mut c = convs();
            assert_eq!(c.agent_message("c", text, t0).len(), 1, "{text}");
        }
    }

    #[test]
    fn greeting_span_counts_utf16_units() {
        let t0 = Instant::now();
        let mut c = convs();
        let text = "😀订单已发货";
        let f = c.agent_message("c", text, t0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].end, 2 + 5);
        assert_eq!(f[0].bytes, 0..text.len());
        assert_eq!(&text[f[0].bytes.clone()], f[0].matched);
    }

    #[test]
    fn messages_with_nothing_to_read_are_not_judged() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        assert!(c.agent_message("c", "👍", t0 + secs(1)).is_empty());
        assert!(c.agent_message("c", "", t0 + secs(2)).is_empty());
        assert!(c.agent_message("c", " ,。!", t0 + secs(3)).is_empty());
        // ...but they do answer the customer,
        assert_eq!(c.next_deadline(), None);
        // and the first readable message is still the first reply.
        assert_eq!(c.agent_message("c", "订单已发货", t0 + secs(4)).len(), 1);
        // A trailing sticker does not hide the missing farewell either.
        assert!(c.agent_message("c", "👋", t0 + secs(5)).is_empty());
        let f = c.end("c", t0 + secs(6));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].matched, "订单已发货");
    }

    #[test]
    fn configured_forms_are_normalised_and_empty_ones_ignored() {
        let t0 = Instant::now();
        let settings = Settings {
            greetings: vec!["  您 好！".into(), "!!".into(), "ＹＯ".into()],
            farewells: vec!["再見".into(), "".into()],
            ..Settings::default()
        };
        let mut c = Conversations::new(settings);
        assert!(c.agent_message("a", "您好", t0).is_empty());
        assert!(c.agent_message("b", "yo,亲", t0).is_empty());
        // "!!" and "" normalise to nothing and must not match everything.
        assert_eq!(c.agent_message("d", "你好", t0).len(), 1, "not configured");
        assert_eq!(c.end("d", t0).len(), 1);
        c.agent_message("e", "您好,再见", t0);
        assert!(c.end("e", t0).is_empty());
    }

    #[test]
    fn default_forms_are_already_normalised() {
        let s = Settings::default();
        for form in s.greetings.iter().chain(&s.farewells) {
            let mut n = String::new();
            normalize_into(form, &mut n);
            assert_eq!(&n, form);
        }
        assert_eq!(s.nudge_after, secs(30));
        assert_eq!(s.reply_sla, secs(60));
        assert_eq!(s.forget_after, secs(3600));
    }

    // ---- farewell -------------------------------------------------------------------------------

    #[test]
    fn end_without_farewell_is_a_finding_over_the_last_message() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        c.agent_message("c", "您好,请问有什么可以帮您?", t0 + secs(1));
        c.customer_message("c", t0 + secs(2));
        let last = "已经帮您改好了😀";
        c.agent_message("c", last, t0 + secs(3));
        let f = c.end("c", t0 + secs(4));
        assert_eq!(f.len(), 1);
        let f = &f[0];
        assert_eq!(f.rule, "conversation.farewell");
        assert_eq!(f.category, Category::Farewell);
        assert_eq!(f.severity, Severity::Warn);
        assert_eq!(f.start, 0);
        assert_eq!(f.end, last.encode_utf16().count());
        assert_eq!(f.bytes, 0..last.len());
        assert_eq!(f.matched, last);
        assert!(f.message.contains("离开有送声"), "{}", f.message);
        assert_eq!(
            f.suggestions,
            vec!["请慢走,再见", "谢谢您的合作,再见", "请问还有什么可以帮您?"]
        );
        assert_eq!(f.fix, None);
        assert!(c.is_empty(), "end forgets the conversation");
    }

    #[test]
    fn end_with_farewell_is_fine() {
        let t0 = Instant::now();
        for last in [
            "请慢走,再见",
            "谢谢您的合作",
            "请问还有什么可以帮您?",
            "祝您生活愉快",
            "欢迎下次光临",
            "謝謝您的合作,再見",
            "好的,拜拜~",
            "Bye!",
            "ＧＯＯＤＢＹＥ",
        ] {
            let mut c = convs();
            c.agent_message("c", "您好", t0);
            c.agent_message("c", last, t0 + secs(1));
            assert_eq!(c.end("c", t0 + secs(2)), vec![], "{last}");
            assert!(c.is_empty());
        }
    }

    #[test]
    fn only_the_last_agent_message_counts_for_the_farewell() {
        let t0 = Instant::now();
        let mut c = convs();
        c.agent_message("c", "您好,再见", t0);
        c.agent_message("c", "补充一下,发票已开", t0 + secs(1));
        c.customer_message("c", t0 + secs(2));
        let f = c.end("c", t0 + secs(3));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].matched, "补充一下,发票已开");

        let mut c = convs();
        c.agent_message("c", "您好", t0);
        c.agent_message("c", "谢谢,再见", t0 + secs(1));
        c.customer_message("c", t0 + secs(2)); // the customer may have the last word
        assert!(c.end("c", t0 + secs(3)).is_empty());
    }

    #[test]
    fn no_farewell_finding_when_the_agent_never_wrote() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        c.customer_message("c", t0 + secs(1));
        assert!(c.end("c", t0 + secs(2)).is_empty());
        assert!(c.is_empty());
        // An agent that sent only a sticker wrote nothing to judge.
        c.agent_message("d", "👍", t0);
        assert!(c.end("d", t0).is_empty());
        // Unknown conversations end quietly.
        assert!(c.end("never-seen", t0).is_empty());
    }

    #[test]
    fn farewell_is_judged_on_the_whole_message_but_the_stored_span_is_capped() {
        let t0 = Instant::now();
        let long = "很".repeat(3_000);
        let mut c = convs();
        c.agent_message("c", "您好", t0);
        c.agent_message("c", &long, t0);
        let f = c.end("c", t0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].matched.chars().count(), MAX_STORED_CHARS);
        assert_eq!(f[0].end, MAX_STORED_CHARS);
        assert_eq!(f[0].bytes, 0..MAX_STORED_CHARS * "很".len());
        assert_eq!(&long[f[0].bytes.clone()], f[0].matched);

        // A farewell past the cap still counts.
        let mut c = convs();
        c.agent_message("c", "您好", t0);
        c.agent_message("c", &format!("{long}再见"), t0);
        assert!(c.end("c", t0).is_empty());
    }

    #[test]
    fn a_conversation_after_its_end_starts_afresh() {
        let t0 = Instant::now();
        let mut c = convs();
        c.agent_message("c", "您好", t0);
        c.end("c", t0 + secs(1));
        assert_eq!(c.agent_message("c", "订单已发货", t0 + secs(2)).len(), 1);
    }

    // ---- reply clock ----------------------------------------------------------------------------

    #[test]
    fn nudge_at_exactly_nudge_after_and_not_before() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        assert!(c.poll(t0).is_empty());
        assert!(c.poll(t0 + secs(29)).is_empty());
        assert!(c.poll(t0 + secs(30) - Duration::from_nanos(1)).is_empty());
        assert_eq!(
            c.poll(t0 + secs(30)),
            vec![Event::Nudge {
                conversation: "c".into(),
                waited: secs(30)
            }]
        );
    }

    #[test]
    fn nudge_comes_once_per_wait() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        assert_eq!(c.poll(t0 + secs(30)).len(), 1);
        assert!(c.poll(t0 + secs(30)).is_empty());
        c.customer_message("c", t0 + secs(40)); // the customer insists: same wait
        assert!(c.poll(t0 + secs(59)).is_empty());
    }

    #[test]
    fn slow_reply_finding_comes_once_at_the_sla() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        assert_eq!(c.poll(t0 + secs(30)).len(), 1);
        assert!(c.poll(t0 + secs(59)).is_empty());
        let events = c.poll(t0 + secs(60));
        assert_eq!(events.len(), 1);
        let Event::SlowReply {
            conversation,
            waited,
            finding,
        } = &events[0]
        else {
            panic!("{events:?}");
        };
        assert_eq!(conversation, "c");
        assert_eq!(*waited, secs(60));
        assert_eq!(finding.rule, "conversation.slow-reply");
        assert_eq!(finding.category, Category::SlowReply);
        assert_eq!(finding.severity, Severity::Warn);
        assert_eq!((finding.start, finding.end), (0, 0));
        assert_eq!(finding.bytes, 0..0);
        assert_eq!(finding.matched, "");
        assert!(finding.message.contains("及时回复"), "{}", finding.message);
        assert!(finding.message.contains("60 秒"), "{}", finding.message);
        assert_eq!(
            finding.suggestions,
            vec!["让您久等了,非常抱歉", "请稍等,马上为您处理"]
        );
        assert_eq!(finding.fix, None);

        assert!(c.poll(t0 + secs(61)).is_empty());
        assert!(c.poll(t0 + secs(600)).is_empty());
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn a_late_poll_returns_both_events_in_order_with_the_real_wait() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        let events = c.poll(t0 + secs(90));
        assert_eq!(
            summary(&events),
            vec![
                ("nudge", "c".to_string(), secs(90)),
                ("slow", "c".to_string(), secs(90))
            ]
        );
        let Event::SlowReply { finding, .. } = &events[1] else {
            panic!()
        };
        assert!(finding.message.contains("90 秒"), "{}", finding.message);
    }

    #[test]
    fn nudge_before_slow_reply_when_due_together() {
        let t0 = Instant::now();
        let mut c = Conversations::new(Settings {
            nudge_after: secs(60),
            reply_sla: secs(60),
            ..Settings::default()
        });
        c.customer_message("c", t0);
        assert_eq!(c.next_deadline(), Some(t0 + secs(60)));
        let kinds: Vec<_> = summary(&c.poll(t0 + secs(60)))
            .into_iter()
            .map(|(k, ..)| k)
            .collect();
        assert_eq!(kinds, vec!["nudge", "slow"]);
    }

    #[test]
    fn agent_reply_stops_the_clock() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        c.agent_message("c", "您好", t0 + secs(20));
        assert_eq!(c.next_deadline(), None);
        assert!(c.poll(t0 + secs(200)).is_empty());

        // After the nudge, a reply still prevents the slow-reply finding.
        let mut c = convs();
        c.customer_message("c", t0);
        assert_eq!(c.poll(t0 + secs(30)).len(), 1);
        c.agent_message("c", "您好,请稍等", t0 + secs(45));
        assert_eq!(c.next_deadline(), None);
        assert!(c.poll(t0 + secs(200)).is_empty());
    }

    #[test]
    fn clock_restarts_after_a_reply_and_a_new_customer_message() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        assert_eq!(c.poll(t0 + secs(60)).len(), 2);
        c.agent_message("c", "您好,让您久等了", t0 + secs(70));
        c.customer_message("c", t0 + secs(100));
        assert_eq!(c.next_deadline(), Some(t0 + secs(130)));
        assert!(c.poll(t0 + secs(129)).is_empty());
        assert_eq!(
            summary(&c.poll(t0 + secs(130))),
            vec![("nudge", "c".to_string(), secs(30))]
        );
        assert_eq!(
            summary(&c.poll(t0 + secs(160))),
            vec![("slow", "c".to_string(), secs(60))]
        );
    }

    #[test]
    fn wait_is_measured_from_the_first_unanswered_customer_message() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        c.customer_message("c", t0 + secs(10));
        c.customer_message("c", t0 + secs(25));
        assert_eq!(c.next_deadline(), Some(t0 + secs(30)));
        assert_eq!(
            summary(&c.poll(t0 + secs(30))),
            vec![("nudge", "c".to_string(), secs(30))]
        );
        assert_eq!(
            summary(&c.poll(t0 + secs(60))),
            vec![("slow", "c".to_string(), secs(60))]
        );
    }

    #[test]
    fn an_agent_message_before_any_customer_starts_no_clock() {
        let t0 = Instant::now();
        let mut c = convs();
        c.agent_message("c", "您好,有什么可以帮您?", t0);
        assert_eq!(c.next_deadline(), None);
        assert!(c.poll(t0 + secs(100)).is_empty());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn next_deadline_values() {
        let t0 = Instant::now();
        let mut c = convs();
        assert_eq!(c.next_deadline(), None);
        c.customer_message("a", t0 + secs(10));
        assert_eq!(c.next_deadline(), Some(t0 + secs(40)));
        c.customer_message("b", t0);
        assert_eq!(c.next_deadline(), Some(t0 + secs(30)));
        assert_eq!(c.poll(t0 + secs(30)).len(), 1); // b nudged
        assert_eq!(c.next_deadline(), Some(t0 + secs(40))); // a's nudge
        c.agent_message("a", "您好", t0 + secs(35));
        assert_eq!(c.next_deadline(), Some(t0 + secs(60))); // b's SLA
        assert_eq!(c.poll(t0 + secs(60)).len(), 1);
        assert_eq!(c.next_deadline(), None);
        // A deadline that is due but not yet polled is still reported, in the past.
        c.customer_message("a", t0 + secs(100));
        assert_eq!(c.next_deadline(), Some(t0 + secs(130)));
        assert!(c.next_deadline() < Some(t0 + secs(500)));
        assert_eq!(c.poll(t0 + secs(500)).len(), 2);
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn end_stops_the_clock() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        assert!(c.end("c", t0 + secs(5)).is_empty());
        assert_eq!(c.next_deadline(), None);
        assert!(c.poll(t0 + secs(100)).is_empty());
    }

    #[test]
    fn durations_too_large_for_an_instant_mean_never() {
        let t0 = Instant::now();
        let mut c = Conversations::new(Settings {
            nudge_after: Duration::MAX,
            reply_sla: Duration::MAX,
            forget_after: Duration::MAX,
            ..Settings::default()
        });
        c.customer_message("c", t0);
        assert_eq!(c.next_deadline(), None);
        assert!(c.poll(t0 + secs(10_000_000)).is_empty());
        assert_eq!(c.len(), 1);
        c.agent_message("c", "您好", t0 + secs(10_000_001));
        assert_eq!(c.len(), 1);

        // Only the nudge disabled: the SLA still applies.
        let mut c = Conversations::new(Settings {
            nudge_after: Duration::MAX,
            ..Settings::default()
        });
        c.customer_message("c", t0);
        assert_eq!(c.next_deadline(), Some(t0 + secs(60)));
        assert_eq!(
            summary(&c.poll(t0 + secs(60))),
            vec![("slow", "c".to_string(), secs(60))]
        );
    }

    // ---- forgetting -----------------------------------------------------------------------------

    #[test]
    fn idle_conversations_are_forgotten() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        c.agent_message("c", "您好", t0 + secs(5));
        assert_eq!(c.len(), 1);
        assert!(!c.is_empty());
        assert!(c.poll(t0 + secs(5 + 3599)).is_empty());
        assert_eq!(c.len(), 1);
        assert!(c.poll(t0 + secs(5 + 3600)).is_empty());
        assert_eq!(c.len(), 0);
        assert!(c.is_empty());
        // It starts afresh: the next reply is a first reply again, and there is nothing to farewell.
        assert_eq!(c.agent_message("c", "订单已发货", t0 + secs(4000)).len(), 1);
    }

    #[test]
    fn activity_keeps_a_conversation_alive() {
        let t0 = Instant::now();
        let mut c = convs();
        c.agent_message("c", "您好", t0);
        for k in 1..=10 {
            c.customer_message("c", t0 + secs(1800 * k));
            c.agent_message("c", "好的", t0 + secs(1800 * k + 1));
            c.poll(t0 + secs(1800 * k + 2));
            assert_eq!(c.len(), 1);
        }
        let f = c.end("c", t0 + secs(1800 * 10 + 3));
        assert_eq!(f.len(), 1, "the same conversation, with its last message");
    }

    #[test]
    fn a_waiting_customer_is_forgotten_too_after_its_events() {
        let t0 = Instant::now();
        let mut c = convs();
        c.customer_message("c", t0);
        let events = c.poll(t0 + secs(3600));
        assert_eq!(events.len(), 2, "events first, then forgetting");
        assert!(c.is_empty());
        assert_eq!(c.next_deadline(), None);
        assert!(c.poll(t0 + secs(7200)).is_empty());
    }

    #[test]
    fn any_call_forgets_idle_conversations() {
        let t0 = Instant::now();
        let mut c = convs();
        c.agent_message("old", "您好", t0);
        c.customer_message("older", t0);
        assert_eq!(c.poll(t0 + secs(60)).len(), 2);
        c.customer_message("new", t0 + secs(3600));
        assert_eq!(c.len(), 1);
        // An end after the idle limit finds the conversation already forgotten: no finding, whether
        // or not a poll came in between.
        c.agent_message("x", "订单已发货", t0 + secs(3600));
        assert!(c.end("x", t0 + secs(7200)).is_empty());
        assert!(c.is_empty());
    }

    #[test]
    fn a_forget_after_below_the_sla_drops_pending_deadlines() {
        let t0 = Instant::now();
        let mut c = Conversations::new(Settings {
            forget_after: secs(45),
            ..Settings::default()
        });
        c.customer_message("c", t0);
        assert_eq!(c.poll(t0 + secs(30)).len(), 1);
        assert!(c.poll(t0 + secs(45)).is_empty());
        assert!(c.is_empty());
        assert_eq!(c.next_deadline(), None);
    }

    // ---- many conversations ---------------------------------------------------------------------

    #[test]
    fn many_conversations_are_independent() {
        let t0 = Instant::now();
        let mut c = convs();
        let n = 100u64; // starting 0.1 s apart, all before t0 + 10 s
        for k in 0..n {
            c.customer_message(&format!("c{k}"), t0 + Duration::from_millis(100 * k));
        }
        assert_eq!(c.len(), n as usize);
        // Agents answer the even conversations before their nudge, with a greeting on every fourth.
        let mut greeting_findings = 0;
        for k in (0..n).step_by(2) {
            let text = if k % 4 == 0 { "您好" } else { "已处理" };
            let at = t0 + Duration::from_millis(100 * k) + secs(10);
            greeting_findings += c.agent_message(&format!("c{k}"), text, at).len();
        }
        assert_eq!(greeting_findings, (n / 4) as usize);

        let events = c.poll(t0 + secs(40));
        let nudged: Vec<_> = summary(&events)
            .into_iter()
            .map(|(kind, conv, waited)| {
                assert_eq!(kind, "nudge");
                (conv, waited)
            })
            .collect();
        // Every odd conversation, in the order they fell due, each with its own wait.
        let expected: Vec<_> = (0..n)
            .filter(|k| k % 2 == 1)
            .map(|k| (format!("c{k}"), secs(40) - Duration::from_millis(100 * k)))
            .collect();
        assert_eq!(nudged, expected);

        // One conversation's reply does not affect another's clock.
        c.agent_message("c1", "您好", t0 + secs(41));
        let slow: Vec<_> = summary(&c.poll(t0 + secs(100)))
            .into_iter()
            .map(|(kind, conv, _)| {
                assert_eq!(kind, "slow");
                conv
            })
            .collect();
        let expected: Vec<_> = (3..n).step_by(2).map(|k| format!("c{k}")).collect();
        assert_eq!(slow, expected);
        assert_eq!(c.next_deadline(), None);

        // Ending one leaves the others: c0's only reply, "您好", was no farewell; c2's "已处理" neither;
        // c3 never had a reply.
        assert_eq!(c.end("c0", t0 + secs(101))[0].matched, "您好");
        assert_eq!(c.end("c2", t0 + secs(101))[0].matched, "已处理");
        assert!(c.end("c3", t0 + secs(101)).is_empty());
        assert_eq!(c.len(), n as usize - 3);
        // c5 is still waiting for its first reply: its clock keeps running, nothing new is due; c1
        // was answered, so its customer's next message starts a new wait.
        c.customer_message("c5", t0 + secs(102));
        assert_eq!(c.next_deadline(), None);
        c.customer_message("c1", t0 + secs(102));
        assert_eq!(c.next_deadline(), Some(t0 + secs(132)));
    }
}
