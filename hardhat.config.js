// Hardhat 2 configuration. Compilation is offline: the pinned solc-js (npm `solc`) is handed to
// Hardhat instead of a downloaded native compiler, and the settings come from
// contracts/compiler.json, which ledger.chain.compiler (py-solc-x) reads too, so both toolchains
// build from the same standard-JSON input and produce identical runtime bytecode.
const path = require("path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const compiler = require("./contracts/compiler.json");

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion !== compiler.solcVersion) {
    return runSuper();
  }
  const solcPkg = require("solc/package.json");
  if (solcPkg.version !== compiler.solcVersion) {
    throw new Error(`npm solc is ${solcPkg.version}, contracts/compiler.json pins ${compiler.solcVersion}`);
  }
  const solc = require("solc");
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: args.solcVersion,
    longVersion: solc.version(),
  };
});

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: compiler.solcVersion,
    settings: compiler.settings,
  },
  paths: {
    sources: path.join(__dirname, "contracts"),
    artifacts: path.join(__dirname, "artifacts"),
    cache: path.join(__dirname, "cache"),
  },
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: "cancun",
      mining: { auto: true },
    },
  },
};
