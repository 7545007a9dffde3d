/** Carrier's version, printed by --version, in `check-config` and as `carrier_build_info`. */
export const VERSION = "0.1.0";
