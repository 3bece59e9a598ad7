//! Scheduling on paused time: a launcher whose attempts take a set time and end
//! as told, so limits, lanes, retries and shutdown are checked to the millisecond
//! without processes.

use super::*;

#[test]
fn retry_delays_double() {
    let base = Duration::from_millis(100);
    assert_eq!(retry_delay(base, 0), Duration::from_millis(100));
    assert_eq!(retry_delay(base, 1), Duration::from_millis(200));
    assert_eq!(retry_delay(base, 3), Duration::from_millis(800));
    assert!(retry_delay(base, 40) >= Duration::from_secs(1000));
}
