"""The emulation service: the meter as devices that batteries, inverters and chargers already
read (a Shelly Pro 3EM, a HomeWizard P1 meter, an SMA Energy Meter). docs/emulate.md."""
