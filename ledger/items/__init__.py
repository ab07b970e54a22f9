"""One item, one code: serial-coded goods with custody history, verification, clone
detection, recall and scan-to-earn (issue 11). Contract: ``contracts/ItemRegistry.sol``."""
