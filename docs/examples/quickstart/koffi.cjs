// The same from CommonJS: save as attention.cjs and run `node attention.cjs`. The packages are
// ES modules; CommonJS loads them with import(), which every supported Node version has.
async function main() {
  const { attention, bshd } = await import('@umfa/koffi');
  const shape = [1, 64, 4, 32]; // [batch, seqlen, heads, head_dim]
  const q = bshd(Float32Array.from({ length: 64 * 4 * 32 }, (_, i) => Math.sin(i)), shape);
  const { out } = attention(q, q, q, { causal: true });
  console.log('out', out.shape.join('×'), out.data.constructor.name);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
