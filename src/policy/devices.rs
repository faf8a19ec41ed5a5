//! Home devices in compiled form: token → (device, profile, school), for DoT and DoH queries.
//!
//! Built from the devices file when the policy is compiled, so a device added, changed or
//! revoked takes effect with the policy swap that carries it, and a query sees one consistent
//! view of both. Revoked devices keep their entry (their id still explains old hit records)
//! but their token is not in the lookup table.

use rustc_hash::FxHashMap;

/// A device or family.
#[derive(Debug, Clone)]
pub struct Device {
    /// Stable id, stored in hit records.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Configured profile index.
    pub profile: u32,
    /// Its place in the time rules (profile, services, rules, time zone).
    pub slot: u32,
    /// School index, if the device belongs to one.
    pub school: Option<u32>,
    /// Whether the school may see this device's hits.
    pub share_with_school: bool,
    /// Revoked: its token is refused.
    pub revoked: bool,
    /// The token (kept to build the setup pages).
    pub token: String,
}

/// Every device, and the live tokens.
#[derive(Debug, Default)]
pub struct Devices {
    devices: Vec<Device>,
    by_token: FxHashMap<Box<str>, u32>,
}

impl Devices {
    /// Adds a device; its token becomes live unless it is revoked.
    pub fn push(&mut self, device: Device) {
        let index = self.devices.len() as u32;
        if !device.revoked {
            self.by_token.insert(device.token.as_str().into(), index);
        }
        self.devices.push(device);
    }

    /// The live device with this token (tokens are lowercase; a server name may arrive in
    /// any case, so the caller lowercases it).
    #[inline]
    pub fn by_token(&self, token: &str) -> Option<u32> {
        self.by_token.get(token).copied()
    }

    /// A device by index.
    pub fn get(&self, index: u32) -> Option<&Device> {
        self.devices.get(index as usize)
    }

    /// Every device, revoked ones included.
    pub fn all(&self) -> &[Device] {
        &self.devices
    }

    /// Devices whose token is live.
    pub fn live(&self) -> usize {
        self.by_token.len()
    }
}
