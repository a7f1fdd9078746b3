// @umfa/koffi and @umfa/napi promise one API: the same exported names, the same runtime kinds,
// and the same types in their published .d.ts files. This test compares them mechanically, so
// a function, option or overload added to one binding and not the other fails here.
//
// Types are read from each package's `types` entry (dist/index.d.ts, the file users compile
// against) with the TypeScript compiler API: for every export, its kind and the full text of its
// type (call and construct signatures, and for classes every instance member). The two packages'
// own names ("@umfa/koffi" / "@umfa/napi", "koffi" / "napi") are the only allowed difference.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const bindings = ['koffi', 'napi'] as const;

function typesEntry(name: string): string {
  const pkgJson = require.resolve(`@umfa/${name}/package.json`);
  const pkg = require(pkgJson) as { types: string };
  return join(dirname(pkgJson), pkg.types);
}

/** The binding's own name, normalised away so the two surfaces can be compared. */
function normalise(text: string, name: string): string {
  return text
    .replaceAll(`@umfa/${name}`, '@umfa/BINDING')
    .replace(new RegExp(`\\b${name}\\b`, 'gi'), 'BINDING')
    .replace(/__@(\w+)@\d+/g, '[Symbol.$1]'); // well-known symbols carry per-program ids
}

const flagsToPrint = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseFullyQualifiedType | ts.TypeFormatFlags.WriteArrowStyleSignature;

/** export name → description of its kind and type, read from the package's declaration files. */
const declared = new Map<string, Map<string, string>>();
function declaredSurface(name: string): Map<string, string> {
  let known = declared.get(name);
  if (!known) declared.set(name, (known = readDeclaredSurface(name)));
  return known;
}

function readDeclaredSurface(name: string): Map<string, string> {
  const entry = typesEntry(name);
  const program = ts.createProgram([entry], {
    strict: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    noEmit: true,
    skipLibCheck: false,
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  expect(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), `${entry} compiles on its own`).toEqual([]);
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  if (!source) throw new Error(`cannot read ${entry}`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  if (!moduleSymbol) throw new Error(`${entry} is not a module`);
  const out = new Map<string, string>();
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const sym = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const parts: string[] = [];
    const decl = sym.declarations?.[0];
    if (sym.flags & ts.SymbolFlags.Class && decl) {
      const ctor = checker.getTypeOfSymbolAtLocation(sym, decl);
      parts.push('class');
      for (const sig of ctor.getConstructSignatures()) parts.push(`new ${checker.signatureToString(sig, undefined, flagsToPrint)}`);
      const instance = checker.getDeclaredTypeOfSymbol(sym);
      for (const base of instance.getBaseTypes?.() ?? []) parts.push(`extends ${checker.typeToString(base, undefined, flagsToPrint)}`);
      for (const member of checker.getPropertiesOfType(instance)) {
        const mt = checker.getTypeOfSymbolAtLocation(member, decl);
        parts.push(`.${member.getName()}: ${checker.typeToString(mt, undefined, flagsToPrint)}`);
        for (const sig of mt.getCallSignatures()) parts.push(`.${member.getName()}${checker.signatureToString(sig, undefined, flagsToPrint)}`);
      }
    } else if (sym.flags & (ts.SymbolFlags.Function | ts.SymbolFlags.Variable) && decl) {
      const t = checker.getTypeOfSymbolAtLocation(sym, decl);
      parts.push(sym.flags & ts.SymbolFlags.Function ? 'function' : 'const');
      parts.push(checker.typeToString(t, undefined, flagsToPrint));
      for (const sig of t.getCallSignatures()) parts.push(checker.signatureToString(sig, undefined, flagsToPrint));
    } else if (sym.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias)) {
      const t = checker.getDeclaredTypeOfSymbol(sym);
      parts.push(sym.flags & ts.SymbolFlags.Interface ? 'interface' : 'type');
      parts.push(checker.typeToString(t, undefined, flagsToPrint | ts.TypeFormatFlags.InTypeAlias));
      for (const p of checker.getPropertiesOfType(t)) {
        parts.push(`.${p.getName()}: ${checker.typeToString(checker.getTypeOfSymbol(p), undefined, flagsToPrint)}`);
      }
    } else {
      parts.push(`symbol flags ${sym.flags}`);
    }
    out.set(exported.getName(), normalise(parts.join('\n'), name));
  }
  return out;
}

async function runtimeSurface(name: string): Promise<Map<string, string>> {
  const mod = (await import(`@umfa/${name}`)) as Record<string, unknown>;
  const out = new Map<string, string>();
  for (const key of Object.keys(mod).sort()) {
    const value = mod[key];
    let kind: string = typeof value;
    if (typeof value === 'function') {
      const own = Object.getOwnPropertyNames((value as { prototype?: object }).prototype ?? {}).sort();
      kind = `function/${(value as (...a: unknown[]) => unknown).length} prototype: ${own.join(',')}`;
    } else if (value !== null && typeof value === 'object') {
      kind = `object {${Object.keys(value).sort().join(',')}}`;
    } else if (typeof value === 'string') {
      kind = `string ${normalise(value, name)}`;
    }
    out.set(key, kind);
  }
  return out;
}

// The documented API, name by name: what `@umfa/koffi` and `@umfa/napi` export (the TypeDoc site
// documents exactly these). Internals (the ABI marshalling, the driver, the loader) are in the
// `/internal` subpaths, which are not part of the API. Adding a name here is an API change.
const PUBLIC_VALUES = [
  'ABI_VERSION', 'BINDING', 'Context', 'ContextBase', 'DeviceTensor', 'Float16ArrayCtor', 'MFAContext', 'MFAContextBase',
  'MFAError', 'MFAStatus', 'Status', 'UmfaError', 'UmfaLoadError', 'abiVersion', 'attention', 'attentionAsync',
  'attentionBackward', 'attentionBackwardAsync', 'backends', 'bf16ToF32', 'bhsd', 'bshd', 'buildInfo', 'contiguousStrides',
  'dtypeSize', 'f16ToF32', 'f32ToBf16', 'f32ToF16', 'flashAttentionForward', 'fromFloat32', 'fromValues', 'hasFloat16Array',
  'inferDType', 'isContiguous', 'isDType', 'isDeviceTensor', 'isFloat16Array', 'libraryPath', 'mfaStatusName', 'numel',
  'statusName', 'stridesOf', 'tensor', 'toFloat32', 'toFloat32Array', 'version', 'zeros',
];
const PUBLIC_TYPES = [
  'AllocatedData', 'AttentionAsyncFunction', 'AttentionBackwardAsyncFunction', 'AttentionBackwardFunction',
  'AttentionFunction', 'AttentionGradients', 'AttentionOptions', 'AttentionResult', 'AttentionResultWithLse',
  'AttentionWindow', 'BackendInfo', 'BackendName', 'BackwardOptions', 'BackwardResult', 'Binding',
  'ClassicForwardOptions', 'ClassicOutData', 'ContextConstructor', 'ContextLike', 'ContextOptions', 'DType',
  'DTypeData', 'DeviceAttentionGradients', 'DeviceAttentionResult', 'DeviceAttentionResultWithLse',
  'DeviceBackwardOptions', 'DeviceBackwardResult', 'DeviceForwardLseData', 'DeviceForwardOptions',
  'DeviceForwardOutData', 'DeviceForwardResult', 'DeviceGradientData', 'DeviceName', 'FlashAttentionForwardFunction',
  'Float16ArrayConstructorLike', 'ForwardLseData', 'ForwardOptions', 'ForwardOutData', 'ForwardResult', 'GradientData',
  'KnownOptions', 'MFAContextConstructor', 'MaskMode', 'OptionField', 'Precision', 'PrecisionData', 'StatusName',
  'Tensor', 'TensorInit',
];

describe('the published surface is the documented one', () => {
  for (const name of bindings) {
    it(`@umfa/${name} exports exactly the documented values`, async () => {
      expect([...(await runtimeSurface(name)).keys()].sort()).toEqual([...PUBLIC_VALUES].sort());
    });
    it(`@umfa/${name} declares exactly the documented values and types`, () => {
      expect([...declaredSurface(name).keys()].sort()).toEqual([...PUBLIC_VALUES, ...PUBLIC_TYPES].sort());
    });
  }
  it('@umfa/api exports the same values, less the binding\'s own', async () => {
    const api = (await import('@umfa/api')) as Record<string, unknown>;
    const own = ['BINDING', 'Context', 'MFAContext', 'abiVersion', 'attention', 'attentionAsync', 'attentionBackward', 'attentionBackwardAsync', 'backends', 'buildInfo', 'flashAttentionForward', 'libraryPath', 'version'];
    expect(Object.keys(api).sort()).toEqual(PUBLIC_VALUES.filter((n) => !own.includes(n)).sort());
  });
});

describe('@umfa/koffi and @umfa/napi have one API', () => {
  it('export the same names with the same runtime kinds', async () => {
    const [a, b] = await Promise.all(bindings.map(runtimeSurface));
    expect([...a!.keys()]).toEqual([...b!.keys()]);
    expect(Object.fromEntries(a!)).toEqual(Object.fromEntries(b!));
    // The contract itself is there (a sanity check that the comparison saw real modules).
    for (const name of ['attention', 'attentionAsync', 'attentionBackward', 'attentionBackwardAsync', 'Context', 'MFAContext', 'flashAttentionForward', 'UmfaError', 'version', 'abiVersion', 'backends']) {
      expect(a!.has(name), name).toBe(true);
    }
  });

  it('declare the same types in their published .d.ts', () => {
    const [a, b] = bindings.map(declaredSurface);
    expect([...a!.keys()].sort()).toEqual([...b!.keys()].sort());
    const differing = [...a!.keys()].filter((k) => a!.get(k) !== b!.get(k));
    expect(
      differing.map((k) => ({ export: k, koffi: a!.get(k), napi: b!.get(k) })),
      'exports whose declared types differ between the bindings',
    ).toEqual([]);
    // The functions are the members of the one surface `createBinding` (@umfa/api) makes, each
    // package exporting them as `const`s of the binding's function types: their call signatures,
    // for host and for device tensors, are what users see.
    expect(a!.get('attention')).toMatch(/^const\n/);
    expect(a!.get('attention')).toMatch(/\n<Q extends ArrayBufferView, O extends ForwardOptions = \{\}>\(q: [^\n]*\.Tensor<Q>, /);
    expect(a!.get('attention')).toMatch(/\n<Q extends ArrayBufferView, O extends DeviceForwardOptions = \{\}>\(q: [^\n]*\.DeviceTensor<Q>, /);
    expect(a!.get('Context')).toMatch(/^class\n/);
    expect(a!.get('Context')).toMatch(/\n\.upload<D extends ArrayBufferView>\(tensor: /);
  });

  it('type results from the arguments (test/types/typed-results.ts compiles, strict)', () => {
    const fixture = join(dirname(fileURLToPath(import.meta.url)), 'types', 'typed-results.ts');
    const program = ts.createProgram([fixture], {
      strict: true,
      noUncheckedIndexedAccess: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
      types: ['node'],
      noEmit: true,
      skipLibCheck: true,
    });
    const errors = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.category === ts.DiagnosticCategory.Error)
      .map((d) => {
        const where = d.file && d.start !== undefined ? `line ${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
        return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
      });
    expect(errors).toEqual([]);
  });
});
