// The small training stack the experiments need: data, a bias-free MLP on the op surface, optimizers, metrics.
export { modularData, type ModOp, type ModularData, type ModularSplit, type ModularDataOptions } from "./data.ts";
export { MLP, type MLPOptions } from "./mlp.ts";
export { AdamW, orthoGrad, type Optimizer, type AdamWConfig, type Tensor } from "./optim.ts";
export { accuracy, maxAbs, dot, l2norm, nlmCosine } from "./metrics.ts";
export { GrokRun, GROK_ARMS, type GrokConfig, type GrokRunOptions, type ArmName, type StepStats } from "./grok.ts";
