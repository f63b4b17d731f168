import { expect, test } from "bun:test";
import { softmax } from "numedge";

test("numedge resolves through package.json exports under Bun", () => {
  const y = softmax(new Float32Array([-2, 0, 0.5]), { cols: 3 });
  expect(y[2]).toBeCloseTo(0.592201, 6);
});
