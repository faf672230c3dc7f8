//! The event-log hook. Stepping is generic over an [`EventSink`]; the default [`NoLog`] has empty
//! inlined methods, so logging costs nothing when off.

use super::events::EventKind;
use super::patients::Status;
use super::state::InstanceRef;

/// What caused a logged status change or action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An event popped from the event queue.
    Event(EventKind),
    /// Intake by a clerk (tick step 3).
    Intake,
    /// Start of triage (tick step 4).
    TriageStart,
    /// A misrouted patient bounced from a ward (tick step 5).
    Bounce,
    /// Start of treatment (tick step 5).
    TreatmentStart,
    /// The router's decision.
    Routing,
    /// The dispatcher sent a helper.
    Dispatch,
    /// The manager moved a swing doctor.
    ManagerMove,
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Event(k) => k.name(),
            Cause::Intake => "intake",
            Cause::TriageStart => "triage_start",
            Cause::Bounce => "bounce",
            Cause::TreatmentStart => "treatment_start",
            Cause::Routing => "routing",
            Cause::Dispatch => "dispatch",
            Cause::ManagerMove => "manager_move",
        }
    }
}

/// One log line: at `clock`, `cause` happened to `patient` (or to staff member `staff`), with an
/// optional status change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogRecord {
    pub instance: u32,
    pub clock: u16,
    pub cause: Cause,
    pub patient: Option<u16>,
    pub staff: Option<u16>,
    pub change: Option<(Status, Status)>,
}

/// Receives log records and end-of-tick callbacks.
pub trait EventSink {
    /// Whether `record` wants records (lets callers skip building them).
    const ENABLED: bool;
    fn record(&mut self, rec: LogRecord);
    /// Called after every completed tick (the clock has just advanced) with the instance state.
    fn tick_end(&mut self, instance: u32, state: &InstanceRef<'_>);
}

/// Logging off.
pub struct NoLog;

impl EventSink for NoLog {
    const ENABLED: bool = false;
    #[inline(always)]
    fn record(&mut self, _rec: LogRecord) {}
    #[inline(always)]
    fn tick_end(&mut self, _instance: u32, _state: &InstanceRef<'_>) {}
}
