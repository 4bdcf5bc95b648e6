#!/usr/bin/env node
// Validates GraphQL queries against GitHub's published schema, as shipped by
// the pinned npm package @octokit/graphql-schema. See README.md beside this file.
//
//   node tools/graphql-validate/validate.mjs --self-test   only the self-test
//   node tools/graphql-validate/validate.mjs DIR           self-test, then every
//                                                          *.graphql file under DIR
//
// Exit status: 0 when everything is valid, 1 on any invalid query, on a failed
// self-test, or when DIR is missing or holds no .graphql file; 2 on bad usage.
//
// Each query goes through the package's own validate(query). That call strips
// source locations and silently drops exact duplicate fragment definitions
// (graphql-tag does both), so each query is also validated with graphql-js
// directly, on the same schema, to get line and column and to catch what the
// package lets through (GitHub rejects a duplicated fragment name).

import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { schema as octokitSchema, validate as octokitValidate } from "@octokit/graphql-schema";
import { GraphQLError, buildClientSchema, parse, validate as graphqlValidate } from "graphql";
import gql from "graphql-tag";

// graphql-tag keeps a process-wide cache and warns when two different files
// define fragments with the same name; every file here is independent.
gql.disableFragmentWarnings();

const schema = buildClientSchema(octokitSchema.json);

function packageVersion() {
  try {
    const url = new URL("./node_modules/@octokit/graphql-schema/package.json", import.meta.url);
    return JSON.parse(readFileSync(url, "utf8")).version;
  } catch {
    return "(version unknown)";
  }
}

/** All problems with one query, as [{ message, locations }]; empty when valid. */
function check(text) {
  let fromPackage;
  try {
    gql.resetCaches();
    fromPackage = octokitValidate(text);
  } catch (error) {
    // A syntax error: the package throws graphql-js's GraphQLError, with locations.
    if (error instanceof GraphQLError || error?.name === "GraphQLError") {
      return [{ message: error.message, locations: error.locations ?? [] }];
    }
    throw error;
  }
  const located = graphqlValidate(schema, parse(text)).map((e) => ({
    message: e.message,
    locations: e.locations ?? [],
  }));
  const seen = new Set(located.map((e) => e.message));
  for (const e of fromPackage) {
    if (!seen.has(e.message)) located.push({ message: e.message, locations: [] });
  }
  return located;
}

function report(name, errors) {
  if (errors.length === 0) {
    console.log(`ok ${name}`);
    return;
  }
  for (const { message, locations } of errors) {
    const [first, ...rest] = locations;
    const where = first ? `${name}:${first.line}:${first.column}` : name;
    console.log(`${where}: error: ${message}`);
    for (const l of rest) console.log(`    also at ${name}:${l.line}:${l.column}`);
  }
}

// Each case must be accepted (expect: "valid") or rejected with an error whose
// message contains `expect`. The first two are the reason this check exists:
// `state` is IssueState! on Issue and PullRequestState! on PullRequest, so the
// two selections conflict unless aliased apart.
const SELF_TEST = [
  {
    name: "union-state-unaliased",
    expect: 'Fields "state" conflict',
    query: `query { repository(owner: "o", name: "n") { issueOrPullRequest(number: 1) {
      ... on Issue { state } ... on PullRequest { state } } } }`,
  },
  {
    name: "union-state-aliased",
    expect: "valid",
    query: `query { repository(owner: "o", name: "n") { issueOrPullRequest(number: 1) {
      ... on Issue { issueState: state } ... on PullRequest { prState: state } } } }`,
  },
  {
    name: "unknown-field",
    expect: 'Cannot query field "noSuchField" on type "Repository"',
    query: `query { repository(owner: "o", name: "n") { noSuchField } }`,
  },
  {
    name: "duplicate-fragment",
    expect: 'There can be only one fragment named "f"',
    query: `query { viewer { ...f } } fragment f on User { login } fragment f on User { login }`,
  },
  {
    name: "syntax-error",
    expect: "Syntax Error",
    query: `query { viewer { login }`,
  },
];

function selfTest() {
  let failed = 0;
  // The package's own validate() alone must reject the union conflict too.
  gql.resetCaches();
  const direct = octokitValidate(SELF_TEST[0].query);
  if (!Array.isArray(direct) || !direct.some((e) => e.message.includes(SELF_TEST[0].expect))) {
    failed++;
    console.log(`self-test FAILED: the package's validate() accepted ${SELF_TEST[0].name}`);
  }
  for (const { name, expect, query } of SELF_TEST) {
    const errors = check(query);
    const pass =
      expect === "valid"
        ? errors.length === 0
        : errors.length > 0 && errors.some((e) => e.message.includes(expect));
    if (!pass) {
      failed++;
      const wanted = expect === "valid" ? "accepted" : `rejected with "${expect}"`;
      console.log(`self-test FAILED: ${name} should be ${wanted}, got:`);
      if (errors.length === 0) console.log("    (no errors)");
      for (const e of errors) console.log(`    ${e.message}`);
    }
  }
  if (failed > 0) {
    console.log(`self-test: ${failed} check(s) wrong; the validator cannot be trusted`);
    return false;
  }
  console.log(`self-test ok: ${SELF_TEST.length} cases (invalid queries rejected, valid ones accepted)`);
  return true;
}

function graphqlFiles(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...graphqlFiles(full));
    else if (entry.name.endsWith(".graphql")) found.push(full);
  }
  return found;
}

function validateDir(dir) {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) {
    console.log(`error: ${dir}: no such directory (the tests should have written the queries there)`);
    return false;
  }
  const files = graphqlFiles(dir).sort();
  if (files.length === 0) {
    console.log(`error: ${dir}: no .graphql file in it; nothing was validated`);
    return false;
  }
  let invalid = 0;
  for (const file of files) {
    const errors = check(readFileSync(file, "utf8"));
    report(file, errors);
    if (errors.length > 0) invalid++;
  }
  const version = packageVersion();
  if (invalid > 0) {
    console.log(`${invalid} of ${files.length} queries invalid against @octokit/graphql-schema ${version}`);
    return false;
  }
  console.log(`all ${files.length} queries valid against @octokit/graphql-schema ${version}`);
  return true;
}

const args = process.argv.slice(2);
if (args.length !== 1 || args[0] === "-h" || args[0] === "--help") {
  console.error("usage: node validate.mjs --self-test | node validate.mjs DIR");
  process.exit(2);
}
let ok = selfTest();
if (ok && args[0] !== "--self-test") ok = validateDir(args[0]);
process.exit(ok ? 0 : 1);
