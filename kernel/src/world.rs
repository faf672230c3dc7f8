//! [`World`]: which world of a counterfactual pair an instance is, one type for every
//! environment. The counterfactual twin has the same seeds (so the same layouts and draws) with
//! the sensitive attribute flipped: AH every agent's sensitive flag, HS every patient's
//! impairment none <-> high.

/// Which world of a counterfactual pair an instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum World {
    /// A plain instance, or the factual twin.
    #[serde(alias = "Factual")]
    Factual = 0,
    /// The counterfactual twin: same streams, the sensitive attribute flipped.
    #[serde(alias = "Counterfactual")]
    Counterfactual = 1,
}

impl World {
    /// The other world of the pair.
    pub fn flipped(self) -> Self {
        match self {
            World::Factual => World::Counterfactual,
            World::Counterfactual => World::Factual,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Both spellings that earlier snapshots used read back as the same world.
    use super::World;

    #[test]
    fn both_spellings_read_and_lowercase_is_written() {
        for (text, w) in [
            ("\"factual\"", World::Factual),
            ("\"Factual\"", World::Factual),
            ("\"counterfactual\"", World::Counterfactual),
            ("\"Counterfactual\"", World::Counterfactual),
        ] {
            assert_eq!(serde_json::from_str::<World>(text).unwrap(), w);
        }
        assert_eq!(
            serde_json::to_string(&World::Counterfactual).unwrap(),
            "\"counterfactual\""
        );
        assert_eq!(World::Factual.flipped(), World::Counterfactual);
        assert_eq!(World::Counterfactual as u8, 1);
    }
}
