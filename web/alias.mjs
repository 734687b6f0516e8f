// How esbuild finds the SDK and its runtime dependencies, for the console
// bundle (build.mjs) and for the TypeScript snippet the console test runs.
// The SDK is consumed from its TypeScript source (its package builds dist/
// with tsc, which a fresh checkout does not have); its runtime dependencies
// resolve from web/node_modules so the bundle holds one copy of each.
// Plain aliases, not a resolve plugin: plugin callbacks run concurrently and
// made esbuild's minified names differ from run to run. An aliased path is
// resolved from web/ (the working directory), so these pick web/node_modules
// (their ESM builds: the directories mirror the packages' export maps).
export const alias = {
  "@iotplatform/sdk": "../sdk/ts/src/index.ts",
  "@bufbuild/protobuf": "./node_modules/@bufbuild/protobuf/dist/esm",
  "@connectrpc/connect": "./node_modules/@connectrpc/connect/dist/esm",
  "@connectrpc/connect-web": "./node_modules/@connectrpc/connect-web/dist/esm",
};
