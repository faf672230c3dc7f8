//! Realised outcomes of finished HS days: ledger sums and finished counts by impairment and
//! priority ([`Outcomes`], what the disparities are measured on) and the per-day aggregates of a
//! metrics line ([`DayAgg`]).

use fairground_kernel::hs::HsDayStats;

/// Realised patient outcomes of the days finished in one iteration: ledger sums and finished
/// counts by [impairment][priority], and per instance.
#[derive(Clone, Debug, Default)]
pub struct Outcomes {
    pub ledger: [[f64; 3]; 3],
    pub finished: [[f64; 3]; 3],
    pub inst_ledger: Vec<f64>,
    pub inst_finished: Vec<f64>,
}

impl Outcomes {
    pub fn new(instances: usize) -> Self {
        Self {
            inst_ledger: vec![0.0; instances],
            inst_finished: vec![0.0; instances],
            ..Self::default()
        }
    }

    pub fn add(&mut self, i: usize, s: &HsDayStats) {
        for imp in 0..3 {
            for pri in 0..3 {
                self.ledger[imp][pri] += s.ledger_finished[imp][pri];
                self.finished[imp][pri] += f64::from(s.finished[imp][pri]);
                self.inst_ledger[i] += s.ledger_finished[imp][pri];
                self.inst_finished[i] += f64::from(s.finished[imp][pri]);
            }
        }
    }

    /// The outcomes of one day (one instance).
    pub fn of_day(s: &HsDayStats) -> Self {
        let mut o = Self::new(1);
        o.add(0, s);
        o
    }

    /// Mean ledger of the finished patients of impairments `imps` and priorities `pris`; None
    /// when there is none.
    pub fn mean(&self, imps: &[usize], pris: &[usize]) -> Option<f64> {
        let (mut l, mut n) = (0.0, 0.0);
        for &i in imps {
            for &p in pris {
                l += self.ledger[i][p];
                n += self.finished[i][p];
            }
        }
        (n > 0.0).then(|| l / n)
    }

    /// Mean ledger of finished non-impaired minus impaired patients, within priority `pri`
    /// (None: all priorities); None when a side has no finished patient.
    pub fn gap(&self, pri: Option<usize>) -> Option<f64> {
        let pris: &[usize] = match pri {
            Some(p) => &[p][..],
            None => &[0, 1, 2],
        };
        Some(self.mean(&[0], pris)? - self.mean(&[1, 2], pris)?)
    }

    /// Mean ledger of finished patients of instance 2k minus its twin 2k + 1.
    pub fn pair_gap(&self, k: usize) -> Option<f64> {
        let mean = |i: usize| {
            (self.inst_finished[i] > 0.0).then(|| self.inst_ledger[i] / self.inst_finished[i])
        };
        Some(mean(2 * k)? - mean(2 * k + 1)?)
    }
}

/// Aggregates over finished days.
#[derive(Clone, Debug, Default)]
pub struct DayAgg {
    pub days: u32,
    pub treated: f64,
    pub ledger: [f64; 3],
    pub finished: [f64; 3],
}

impl DayAgg {
    pub fn add(&mut self, s: &HsDayStats) {
        self.days += 1;
        self.treated += f64::from(s.patients_treated);
        for imp in 0..3 {
            for pri in 0..3 {
                self.ledger[imp] += s.ledger_finished[imp][pri];
                self.finished[imp] += f64::from(s.finished[imp][pri]);
            }
        }
    }
    pub fn treated_mean(&self) -> Option<f64> {
        (self.days > 0).then(|| self.treated / f64::from(self.days))
    }
    pub fn by_group(&self) -> Option<[f64; 3]> {
        (self.days > 0).then(|| {
            std::array::from_fn(|g| {
                if self.finished[g] > 0.0 {
                    self.ledger[g] / self.finished[g]
                } else {
                    0.0
                }
            })
        })
    }
}
