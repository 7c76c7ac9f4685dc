/**
 * What a `.funcignore` lets into the deployment zip, evaluated the way the two packagers do it:
 *
 * - `azd` (azure-dev `createDeployableZip`) walks the tree, asks github.com/denormal/go-gitignore
 *   about each entry (the last matching pattern wins) and skips an excluded directory's subtree.
 *   That library has one quirk that matters here: an anchored pattern without an inner slash
 *   (`/*`) is matched with fnmatch *without* FNM_PATHNAME against the whole relative path, so its
 *   `*` also matches `/` and `/*` matches `dist/main.js` too.
 * - `func azure functionapp publish` and git follow the gitignore documentation: `*` never
 *   matches `/`, and a pattern without a slash matches a name at any depth.
 *
 * azd also refuses `remoteBuild: false` when `node_modules` (as a directory) is excluded.
 */

interface Rule {
  negated: boolean;
  anchored: boolean;
  directoryOnly: boolean;
  /** Pattern components split at `/`, leading/trailing slash removed. */
  parts: string[];
  source: string;
}

export type Dialect = 'azd' | 'git';

export function parseIgnore(text: string): Rule[] {
  const rules: Rule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.replace(/\s+$/, '');
    if (!line || line.startsWith('#')) continue;
    const source = line;
    const negated = line.startsWith('!');
    if (negated) line = line.slice(1);
    const anchored = line.startsWith('/');
    if (anchored) line = line.slice(1);
    const directoryOnly = line.endsWith('/');
    if (directoryOnly) line = line.slice(0, -1);
    rules.push({ negated, anchored, directoryOnly, parts: line.split('/'), source });
  }
  return rules;
}

/** fnmatch with `*`, `?` and `[…]`; with `pathname`, wildcards never match `/`. */
export function fnmatch(pattern: string, text: string, pathname: boolean): boolean {
  const any = pathname ? '[^/]' : '.';
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += `${any}*`;
    else if (c === '?') re += any;
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) re += '\\[';
      else {
        const body = pattern.slice(i + 1, end).replace(/^!/, '^');
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's').test(text);
}

function matchComponents(parts: string[], path: string[]): boolean {
  if (parts.length === 0) return path.length === 0;
  const [head, ...rest] = parts;
  if (head === '**') return matchComponents(rest, path) || (path.length > 0 && matchComponents(parts, path.slice(1)));
  return path.length > 0 && fnmatch(head!, path[0]!, true) && matchComponents(rest, path.slice(1));
}

/** Whether one rule matches a path relative to the ignore file's directory. */
export function ruleMatches(rule: Rule, relPath: string, isDir: boolean, dialect: Dialect): boolean {
  if (rule.directoryOnly && !isDir) return false;
  const path = relPath.split('/');
  const hasAny = rule.parts.includes('**');
  const hasSlash = rule.parts.length > 1;
  if (dialect === 'azd') {
    if (hasAny) return matchComponents(rule.anchored || rule.parts[0] === '**' ? rule.parts : ['**', ...rule.parts], path);
    if (hasSlash) {
      if (rule.anchored) return fnmatch(rule.parts.join('/'), relPath, true);
      const tail = path.slice(-rule.parts.length);
      return tail.length === rule.parts.length && fnmatch(rule.parts.join('/'), tail.join('/'), true);
    }
    // The quirk: anchored name patterns see the whole path, without FNM_PATHNAME.
    return rule.anchored ? fnmatch(rule.parts[0]!, relPath, false) : fnmatch(rule.parts[0]!, path.at(-1)!, false);
  }
  // git: a slash at the start or in the middle anchors the pattern to the ignore file's directory.
  if (rule.anchored || hasSlash) return matchComponents(rule.parts, path);
  return fnmatch(rule.parts[0]!, path.at(-1)!, true);
}

/** The last matching rule decides; undefined when none matches. */
export function decide(rules: Rule[], relPath: string, isDir: boolean, dialect: Dialect): 'ignore' | 'include' | undefined {
  for (let i = rules.length - 1; i >= 0; i--) {
    const rule = rules[i]!;
    if (ruleMatches(rule, relPath, isDir, dialect)) return rule.negated ? 'include' : 'ignore';
  }
  return undefined;
}

/**
 * The files of `tree` (relative paths, `/`-separated) that end up in the zip: an entry is dropped
 * when the rules ignore it or any directory above it.
 */
export function packaged(ignoreText: string, tree: string[], dialect: Dialect): string[] {
  const rules = parseIgnore(ignoreText);
  return tree.filter((file) => {
    const parts = file.split('/');
    for (let depth = 1; depth <= parts.length; depth++) {
      const isDir = depth < parts.length;
      if (decide(rules, parts.slice(0, depth).join('/'), isDir, dialect) === 'ignore') return false;
    }
    return true;
  });
}

/** azd's remoteBuild consistency rule: is the `node_modules` directory itself excluded? */
export function excludesNodeModules(ignoreText: string): boolean {
  return decide(parseIgnore(ignoreText), 'node_modules', true, 'azd') === 'ignore';
}
