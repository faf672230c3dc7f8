//! Rooms, floors, travel times, illnesses and the routing quality map (spec §2.2–2.3).
//!
//! Travel times are precomputed once per speed class into a table with exactly the reference's
//! float operations (`max(0.1, (base + 2·|Δfloor|) · (75 / speed))`), so a lookup equals the
//! reference's computation bit for bit.

use serde::{Deserialize, Serialize};

/// A room. Discriminants follow the reference's room dictionary order, which is also the order
/// of the treatment pass (spec §2.5 step 5: wards 2..=7 ascending).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Room {
    Entrance = 0,
    Triage = 1,
    Resuscitation = 2,
    AcuteCare = 3,
    PromptCare = 4,
    Pediatrics = 5,
    Psychiatry = 6,
    Imaging = 7,
    StaffArea = 8,
    Exit = 9,
}

pub const ROOMS: usize = 10;
/// Stored "no room" (in transit).
pub const ROOM_NONE: u8 = u8::MAX;

impl Room {
    pub const ALL: [Room; ROOMS] = [
        Room::Entrance,
        Room::Triage,
        Room::Resuscitation,
        Room::AcuteCare,
        Room::PromptCare,
        Room::Pediatrics,
        Room::Psychiatry,
        Room::Imaging,
        Room::StaffArea,
        Room::Exit,
    ];

    #[inline]
    pub fn from_u8(r: u8) -> Room {
        Room::ALL[r as usize]
    }

    pub fn floor(self) -> i32 {
        match self {
            Room::AcuteCare | Room::PromptCare => 1,
            Room::Pediatrics | Room::Psychiatry => 2,
            Room::Imaging => 3,
            _ => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Room::Entrance => "Entrance",
            Room::Triage => "Triage",
            Room::Resuscitation => "Resuscitation",
            Room::AcuteCare => "AcuteCare",
            Room::PromptCare => "PromptCare",
            Room::Pediatrics => "Pediatrics",
            Room::Psychiatry => "Psychiatry",
            Room::Imaging => "Imaging",
            Room::StaffArea => "StaffArea",
            Room::Exit => "Exit",
        }
    }

    /// Is this one of the six treatment wards?
    #[inline]
    pub fn is_ward(r: u8) -> bool {
        (Room::Resuscitation as u8..=Room::Imaging as u8).contains(&r)
    }
}

/// Slot of a ward in the per-ward columns (dict order: Resuscitation 0 … Imaging 5).
#[inline]
pub fn ward_slot(room: u8) -> usize {
    debug_assert!(Room::is_ward(room));
    (room - Room::Resuscitation as u8) as usize
}

/// The wards in the order used by observations and actions (spec §2.7): W.
pub const W: [Room; 6] = [
    Room::PromptCare,
    Room::AcuteCare,
    Room::Psychiatry,
    Room::Pediatrics,
    Room::Resuscitation,
    Room::Imaging,
];

/// Base travel minutes at speed 75 (spec §2.2); unlisted pairs, including a room to itself, = 5.
fn base_minutes(a: Room, b: Room) -> f64 {
    use Room::*;
    let ward_triage = |w: Room| match w {
        Resuscitation => Some(3.0),
        AcuteCare => Some(4.0),
        PromptCare => Some(2.5),
        Pediatrics => Some(4.5),
        Psychiatry => Some(5.0),
        Imaging => Some(6.0),
        _ => None,
    };
    match (a, b) {
        (Entrance, Triage) => 2.0,
        (Triage, w) if ward_triage(w).is_some() => ward_triage(w).unwrap(),
        (w, Triage) if ward_triage(w).is_some() => ward_triage(w).unwrap(),
        (Imaging, AcuteCare) => 3.0,
        (PromptCare, Exit) => 2.0,
        (AcuteCare, Exit) => 3.5,
        (Psychiatry, Exit) => 3.0,
        (Pediatrics, Exit) => 3.0,
        (StaffArea, Triage) | (Triage, StaffArea) => 2.0,
        _ => 5.0,
    }
}

/// Movement speed classes (m/min): patient none/low/high impairment, nurse, robot.
pub const SPEEDS: [f64; 5] = [75.0, 60.0, 45.0, 90.0, 100.0];
pub const SPEED_NURSE: usize = 3;
pub const SPEED_ROBOT: usize = 4;

/// The reference's travel formula for one pair and speed.
pub fn travel_minutes(a: Room, b: Room, speed: f64) -> f64 {
    let floor_penalty = (a.floor() - b.floor()).abs() as f64 * 2.0;
    let total = base_minutes(a, b) + floor_penalty;
    f64::max(0.1, total * (75.0 / speed))
}

/// Travel minutes for every speed class and directed room pair.
#[derive(Clone, Debug)]
pub struct TravelTable {
    t: [[[f64; ROOMS]; ROOMS]; SPEEDS.len()],
}

impl Default for TravelTable {
    fn default() -> Self {
        Self::new()
    }
}

impl TravelTable {
    pub fn new() -> Self {
        let mut t = [[[0.0; ROOMS]; ROOMS]; SPEEDS.len()];
        for (s, speed) in SPEEDS.iter().enumerate() {
            for a in Room::ALL {
                for b in Room::ALL {
                    t[s][a as usize][b as usize] = travel_minutes(a, b, *speed);
                }
            }
        }
        Self { t }
    }

    #[inline]
    pub fn get(&self, speed_class: usize, a: u8, b: u8) -> f64 {
        self.t[speed_class][a as usize][b as usize]
    }
}

/// Illnesses in the reference's draw order.
pub const ILLNESSES: [&str; 6] = [
    "emergency",
    "cardio",
    "general",
    "pediatric",
    "psychiatric",
    "xray",
];

/// The only ward that treats an illness (spec §2.3), by illness index.
pub const CANONICAL_WARD: [Room; 6] = [
    Room::Resuscitation,
    Room::AcuteCare,
    Room::PromptCare,
    Room::Pediatrics,
    Room::Psychiatry,
    Room::Imaging,
];

/// Router reward multiplier of sending illness `i` to `ward` (spec §2.3); `None` = wrong ward.
pub fn quality(illness: u8, ward: Room) -> Option<f64> {
    use Room::*;
    match (illness, ward) {
        (0, Resuscitation) => Some(1.0),
        (1, AcuteCare) => Some(1.0),
        (1, PromptCare) => Some(0.4),
        (1, Resuscitation) => Some(0.7),
        (5, Imaging) => Some(1.0),
        (5, PromptCare) => Some(0.5),
        (4, Psychiatry) => Some(1.0),
        (4, PromptCare) => Some(0.2),
        (3, Pediatrics) => Some(1.0),
        (3, PromptCare) => Some(0.6),
        (2, PromptCare) => Some(1.0),
        (2, AcuteCare) => Some(0.5),
        _ => None,
    }
}

/// The 12 symptom bits of an illness (order: fever, cough, minor_pain, chest_pain,
/// shortness_of_breath, high_blood_pressure, agitation, confusion, severe_trauma,
/// unconsciousness, suspected_fracture, is_child).
pub fn symptoms(illness: u8) -> [f32; 12] {
    let mut s = [0.0f32; 12];
    let on: &[usize] = match illness {
        0 => &[9, 3, 4],  // emergency: unconsciousness, chest_pain, shortness_of_breath
        1 => &[3, 4, 5],  // cardio
        2 => &[0, 2],     // general: fever, minor_pain
        3 => &[11, 0, 1], // pediatric: is_child, fever, cough
        4 => &[7, 5],     // psychiatric: confusion, high_blood_pressure
        _ => &[10, 2],    // xray: suspected_fracture, minor_pain
    };
    for &i in on {
        s[i] = 1.0;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precomputed_table_matches_the_spec() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-3;
        // Spec §2.2 table at speed 75: Triage→ward, ward→Exit, StaffArea→ward.
        let rows = [
            (Room::PromptCare, 4.5, 4.0, 7.0),
            (Room::AcuteCare, 6.0, 5.5, 7.0),
            (Room::Psychiatry, 9.0, 7.0, 9.0),
            (Room::Pediatrics, 8.5, 7.0, 9.0),
            (Room::Resuscitation, 3.0, 5.0, 5.0),
            (Room::Imaging, 12.0, 11.0, 11.0),
        ];
        for (w, tri, exit, staff) in rows {
            assert!(close(travel_minutes(Room::Triage, w, 75.0), tri), "{w:?}");
            assert!(close(travel_minutes(w, Room::Triage, 75.0), tri), "{w:?}");
            assert!(close(travel_minutes(w, Room::Exit, 75.0), exit), "{w:?}");
            assert!(
                close(travel_minutes(Room::StaffArea, w, 75.0), staff),
                "{w:?}"
            );
            assert!(
                close(travel_minutes(w, Room::StaffArea, 75.0), staff),
                "{w:?}"
            );
        }
        assert!(close(
            travel_minutes(Room::StaffArea, Room::Entrance, 90.0),
            4.167
        ));
        assert!(close(
            travel_minutes(Room::StaffArea, Room::Entrance, 100.0),
            3.75
        ));
        assert!(close(
            travel_minutes(Room::StaffArea, Room::Triage, 90.0),
            1.667
        ));
        assert!(close(
            travel_minutes(Room::StaffArea, Room::Triage, 100.0),
            1.5
        ));
        assert!(close(
            travel_minutes(Room::Exit, Room::StaffArea, 75.0),
            5.0
        ));
    }

    #[test]
    fn canonical_wards_are_perfect_and_symptoms_are_distinct() {
        for i in 0..6u8 {
            assert_eq!(quality(i, CANONICAL_WARD[i as usize]), Some(1.0));
            for j in 0..i {
                assert_ne!(symptoms(i), symptoms(j));
            }
        }
    }
}
