"""The catalog of NBI sets: NBImageInfo.plist, validation, scanning, building and editing sets."""
