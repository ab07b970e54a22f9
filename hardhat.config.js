// Hardhat 2 compiles offline with the pinned solc-js from node_modules: the documented
// custom-compiler override of the solc-build subtask. Version and settings come from
// contracts/solc.json, the one file py-solc-x reads too, so both give identical bytecode.
const path = require("path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const solcConfig = require("./contracts/solc.json");

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion === solcConfig.version) {
    const solcPkg = path.dirname(require.resolve("solc/package.json"));
    return {
      compilerPath: path.join(solcPkg, "soljson.js"),
      isSolcJs: true,
      version: args.solcVersion,
      longVersion: require("solc").version(),
    };
  }
  return runSuper();
});

const { outputSelection, ...settings } = solcConfig.settings;

module.exports = {
  solidity: { version: solcConfig.version, settings },
  networks: {
    // `hardhat node` runs the fork the contracts are compiled for (contracts/solc.json).
    // Hardhat 2.29's default (Osaka) caps a transaction at 2^24 gas (EIP-7825), below the
    // outbox's 200-line batches: every batch was refused and the merchant's queue stalled.
    hardhat: { hardfork: settings.evmVersion },
  },
  paths: {
    sources: "./contracts",
    artifacts: "./build/hardhat/artifacts",
    cache: "./build/hardhat/cache",
  },
};
