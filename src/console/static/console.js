// The scaler console: four views over the scaler's HTTP API, plain DOM, uPlot for the trends.
// The function key comes from the page's own address (?code=, as Azure hands out function URLs)
// or from a prompt, is kept in sessionStorage (this tab only) and sent as x-functions-key.
/* global uPlot */
'use strict';
(() => {
  const KEY_STORE = 'ccscale.functionKey';
  const params = new URLSearchParams(location.search);
  if (params.get('code')) sessionStorage.setItem(KEY_STORE, params.get('code'));
  // The API lives next to the page: /api/console → /api.
  const API = location.pathname.replace(/\/console\/?$/i, '');
  const REFRESH_MS = Math.min(300, Math.max(1, Number(params.get('refresh')) || 5)) * 1000;
  const STATES = ['queued', 'planning', 'submitted', 'fulfilled', 'partially_fulfilled', 'failed', 'rejected'];
  const OPEN = 'queued,planning,submitted';

  const $ = (sel, root = document) => root.querySelector(sel);
  const view = $('#view');
  const alertBox = $('#alert');
  const updatedEl = $('#updated');

  /** Element builder: text children are text nodes (never parsed as HTML). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'style') Object.assign(el.style, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const dash = '—';
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en') : dash);
  function duration(seconds) {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return dash;
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return `${s} s`;
    if (s < 5400) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ''}`.trim();
    if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
    return `${Math.round(s / 86400)} d`;
  }
  const ago = (iso) => (iso ? `${duration((Date.now() - Date.parse(iso)) / 1000)} ago` : dash);
  const clock = (iso) => (iso ? new Date(iso).toLocaleString('en-GB', { hour12: false }) : dash);
  const until = (iso) => {
    const s = (Date.parse(iso) - Date.now()) / 1000;
    return s > 0 ? `in ${duration(s)}` : `${duration(-s)} ago`;
  };
  // A list row's lease, release and spot figures, in a few words (empty when it has none).
  const lifecycleNote = (r) =>
    [r.released ? `released: ${r.released}` : r.leaseExpiresAt ? `lease ${until(r.leaseExpiresAt)}` : '', r.spot ? `${r.spot} spot` : '', r.evicted ? `${r.evicted} evicted` : '']
      .filter(Boolean)
      .join(' · ');
  // Money as docs/api.md's Cost writes it: `12.34 USD` (a budget as declared: `15 USD`), — when unknown.
  const money = (v, currency, digits = 2) => (typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(digits)}${currency ? ` ${currency}` : ''}` : dash);
  const budgetAmount = (v, currency) => `${v}${currency ? ` ${currency}` : ''}`;
  const stateBadge = (s) => h('span', { class: `badge state-${s}`, 'data-state': s, text: s.replace('_', ' ') });

  // ---- the function key and the API ----
  let asking = null;
  function askKey(why) {
    asking ??= new Promise((resolve) => {
      const dialog = $('#key-dialog');
      const input = $('#key-input');
      $('#key-why').textContent = why;
      input.value = '';
      const done = (ok) => {
        dialog.removeEventListener('close', onClose);
        asking = null;
        if (ok && input.value.trim()) sessionStorage.setItem(KEY_STORE, input.value.trim());
        input.value = '';
        resolve(ok);
      };
      const onClose = () => done(dialog.returnValue === 'ok');
      dialog.addEventListener('close', onClose);
      $('#key-cancel').onclick = () => dialog.close('cancel');
      dialog.returnValue = '';
      dialog.showModal();
      input.focus();
    });
    return asking;
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function api(path, init = {}, retried = false) {
    const key = sessionStorage.getItem(KEY_STORE);
    const headers = { accept: 'application/json', ...(key ? { 'x-functions-key': key } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) };
    // A hung connection must not hold the refresh loop (one update at a time): give up after 30 s
    const { as: _as, ...request } = init;
    const res = await fetch(`${API}${path}`, { signal: AbortSignal.timeout(30_000), ...request, headers, cache: 'no-store' });
    if (res.status === 401 && !retried) {
      const problem = await res.json().catch(() => ({}));
      // A refused signature is not a key problem: asking for a key again would not help.
      if (problem.code !== 'HTTP_SIGNATURE' && (await askKey(key ? 'The API refused the key: enter a valid function key.' : 'Enter the function key to read the API.')))
        return api(path, init, true);
      throw new ApiError(401, problem.detail || 'the API refused the request (401)');
    }
    if (init.as === 'text' && res.ok) return res.text();
    const body = await res.json().catch(() => null);
    // Health answers 503 with its own body when degraded: that is data, not an error.
    if (!res.ok && !(res.status === 503 && body && body.status)) throw new ApiError(res.status, (body && (body.detail || body.message)) || `HTTP ${res.status}`);
    return body;
  }

  // ---- refresh loop, routing, focus-preserving updates ----
  let lastOk = 0;
  let timer = 0;
  let current = null;
  let generation = 0;

  function showError(error) {
    alertBox.hidden = false;
    alertBox.textContent = `Could not refresh: ${error.message || error}`;
  }
  function clearError() {
    alertBox.hidden = true;
    alertBox.textContent = '';
  }

  /** Replaces a region's content, keeping focus on the element with the same data-focus key. */
  function swap(region, ...children) {
    const active = document.activeElement;
    const focusKey = active && region.contains(active) ? active.getAttribute('data-focus') : null;
    region.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
    if (focusKey) region.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`)?.focus();
  }

  // One update at a time per view: a refresh asked for while one runs (a filter changed, a search submitted) runs
  // again after it, so an older answer can never land over a newer one.
  let running = null;
  let again = false;
  async function refresh() {
    clearTimeout(timer);
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        const gen = generation;
        if (!current) return;
        try {
          await current.update();
          if (gen !== generation) continue;
          lastOk = Date.now();
          showUpdated();
          clearError();
        } catch (error) {
          if (gen === generation) showError(error);
        }
      } while (again);
      schedule();
    })().finally(() => {
      running = null;
    });
    return running;
  }
  function schedule() {
    clearTimeout(timer);
    if (!document.hidden) timer = setTimeout(refresh, REFRESH_MS);
  }
  const showUpdated = () => {
    updatedEl.textContent = lastOk ? `updated ${duration((Date.now() - lastOk) / 1000)} ago · every ${REFRESH_MS / 1000} s` : 'loading…';
  };
  setInterval(showUpdated, 1000);
  document.addEventListener('visibilitychange', () => (document.hidden ? clearTimeout(timer) : refresh()));

  function route() {
    const [path, query = ''] = location.hash.replace(/^#/, '').split('?');
    const parts = path.split('/').filter(Boolean);
    const name = parts[0] || 'clusters';
    generation++;
    clearTimeout(timer);
    current?.destroy?.();
    for (const a of document.querySelectorAll('nav a')) {
      if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const make = name === 'requests' && parts[1] ? () => requestView(decodeURIComponent(parts.slice(1).join('/'))) : VIEWS[name] || VIEWS.clusters;
    view.replaceChildren();
    current = make(new URLSearchParams(query));
    document.title = `${current.title} · Scaler console`;
    refresh();
  }

  // ---- Clusters ----
  function bar(b) {
    const scale = Math.max(1, b.maxCount, b.activeCount + b.inFlight + b.availableCount);
    const pct = (n) => `${Math.min(100, (Math.max(0, n) / scale) * 100)}%`;
    const label = `${b.activeCount} used, ${b.inFlight} in flight, ${b.availableCount} available of ${b.maxCount}; quota ${b.quotaCount}`;
    return h(
      'div',
      { class: 'bar', role: 'img', 'aria-label': label },
      h('span', { class: 'seg-used', style: { width: pct(b.activeCount) } }),
      h('span', { class: 'seg-inflight', style: { width: pct(b.inFlight) } }),
      h('span', { class: 'seg-avail', style: { width: pct(b.availableCount) } }),
      b.quotaCount < scale ? h('span', { class: 'quota-mark', title: `quota ${b.quotaCount}`, style: { left: pct(b.quotaCount) } }) : null,
    );
  }

  function bucketRow(na, b) {
    const groups = b.placementGroups.map((g) => {
      const fill = Math.min(1, (g.activeCount + g.inFlight) / Math.max(1, b.maxPlacementGroupSize));
      return h(
        'span',
        { class: 'group', 'data-group': g.name },
        h('span', { class: 'mono', text: g.name }),
        h(
          'span',
          { class: 'mini', role: 'img', 'aria-label': `${g.activeCount} active, ${g.inFlight} in flight of ${b.maxPlacementGroupSize}` },
          h('span', { class: 'seg-used', style: { width: `${(g.activeCount / Math.max(1, b.maxPlacementGroupSize)) * 100}%` } }),
          h('span', { class: 'seg-inflight', style: { width: `${Math.max(0, fill - g.activeCount / Math.max(1, b.maxPlacementGroupSize)) * 100}%` } }),
        ),
        h('span', { text: `${g.activeCount + g.inFlight}/${b.maxPlacementGroupSize}` }),
      );
    });
    return h(
      'div',
      { class: 'bucket', 'data-bucket': `${na.name}/${b.machineType}`, 'data-used': b.activeCount, 'data-inflight': b.inFlight, 'data-available': b.availableCount },
      h(
        'div',
        { class: 'bucket-name' },
        b.machineType,
        ' ',
        h('span', { class: 'muted', text: `${b.vcpuCount} vCPU · ${Math.round(b.memoryGB)} GB${b.infiniband ? ' · InfiniBand' : ''}` }),
        b.valid ? null : [' ', h('span', { class: 'badge bad', text: 'invalid' })],
      ),
      bar(b),
      h(
        'div',
        { class: 'numbers' },
        h('b', { text: num(b.activeCount) }),
        ' used · ',
        h('b', { text: num(b.inFlight) }),
        ' in flight · ',
        h('b', { text: num(b.availableCount) }),
        ' available · max ',
        num(b.maxCount),
        ' · quota ',
        num(b.quotaCount),
        b.infiniband || b.placementGroups.length ? ` · placement groups hold ${b.maxPlacementGroupSize}` : '',
      ),
      b.backoff
        ? h(
            'div',
            { class: 'backoff', 'data-backoff': '' },
            h('b', { text: `Backing off for ${duration(b.backoff.secondsLeft)}` }),
            ` (until ${clock(b.backoff.until)}): ${b.backoff.reason}`,
          )
        : null,
      groups.length ? h('div', { class: 'groups', 'aria-label': 'Placement groups' }, groups) : null,
    );
  }

  /** A tenant's monthly budget: `15 USD`, marked past once this month's spend reached it. */
  function budgetCell(x, currency, rows) {
    const b = x.budget;
    const title = b && b.spent !== null ? `${money(b.spent, currency)} spent this month` : null;
    return h(
      'td',
      { 'data-label': 'Budget', class: 'num', rowspan: rows > 1 ? rows : null, 'data-cost': 'budget', 'data-past': b ? String(b.past) : null, title },
      b ? budgetAmount(b.monthly, currency) : dash,
      b?.past ? [' ', h('span', { class: 'badge bad', title: 'new demands wait until next month', text: 'past' })] : null,
    );
  }

  /**
   * Per tenant and cluster: nodes, cores (of its cap) and its dominant share, from GET /api/tenants;
   * per tenant (over every cluster, on its first row) what it spent today and this month and its budget.
   */
  function tenantsPanel(t) {
    if (!t?.tenants.length) return null;
    const found = [...new Set(t.tenants.flatMap((x) => Object.keys(x.usage)))].sort();
    // No configured cluster: one row per tenant still, for its costs
    const clusters = found.length ? found : [null];
    const pct = (v) => `${Math.round((v || 0) * 1000) / 10} %`;
    return h(
      'section',
      { class: 'panel', 'aria-labelledby': 'tenants-title', 'data-tenants': '' },
      h('h2', { id: 'tenants-title', text: 'Tenants' }),
      h('p', {
        class: 'muted',
        text: `${
          t.declared ? 'From the tenants document: weight, caps, what each holds and its share of the cluster.' : 'No tenants document: every request is the default tenant’s.'
        } ${t.currency ? 'Costs are UTC days and months, over every cluster.' : 'No price table: no costs.'}`,
      }),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'stack', 'aria-label': 'Tenants' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Tenant', 'Weight', 'Cluster', 'Nodes', 'Cores', 'Share', 'Cost today', 'This month', 'Budget'].map((x, i) =>
                h('th', { scope: 'col', class: i === 1 || i > 2 ? 'num' : null, text: x }),
              ),
            ),
          ),
          h(
            'tbody',
            {},
            t.tenants.flatMap((x) =>
              clusters.map((c, i) => {
                const u = (c !== null && x.usage[c]) || { nodes: 0, cores: 0 };
                const cap = c === null ? undefined : x.caps.maxCores[c];
                const nodeCap = c === null ? undefined : x.caps.maxNodes[c];
                const span = clusters.length > 1 ? clusters.length : null;
                return h(
                  'tr',
                  { 'data-tenant': x.name, 'data-cluster': c },
                  h('td', { 'data-label': 'Tenant', class: 'mono', text: x.name }),
                  h('td', { 'data-label': 'Weight', class: 'num', text: num(x.weight) }),
                  h('td', { 'data-label': 'Cluster', text: c ?? dash }),
                  h('td', {
                    'data-label': 'Nodes',
                    class: 'num',
                    'data-nodes': String(u.nodes),
                    text: c === null ? dash : nodeCap === undefined ? num(u.nodes) : `${num(u.nodes)} of ${num(nodeCap)}`,
                  }),
                  h('td', {
                    'data-label': 'Cores',
                    class: 'num',
                    'data-cores': String(u.cores),
                    text: c === null ? dash : cap === undefined ? num(u.cores) : `${num(u.cores)} of ${num(cap)}`,
                  }),
                  h('td', { 'data-label': 'Share', class: 'num', text: c === null ? dash : pct(x.share[c]) }),
                  // Costs and budget are the tenant's over every cluster: once, beside its first cluster
                  i === 0
                    ? [
                        h('td', { 'data-label': 'Cost today', class: 'num', rowspan: span, 'data-cost': 'today', text: money(x.costToday, t.currency) }),
                        h('td', { 'data-label': 'This month', class: 'num', rowspan: span, 'data-cost': 'month', text: money(x.costMonth, t.currency) }),
                        budgetCell(x, t.currency, clusters.length),
                      ]
                    : null,
                );
              }),
            ),
          ),
        ),
      ),
    );
  }

  function clustersView() {
    const region = h('div');
    view.append(
      h('h1', { text: 'Clusters' }),
      h(
        'div',
        { class: 'legend', 'aria-hidden': 'true' },
        h('span', {}, h('i', { class: 'seg-used' }), 'used'),
        h('span', {}, h('i', { class: 'seg-inflight' }), 'in flight (asked since the snapshot)'),
        h('span', {}, h('i', { class: 'seg-avail' }), 'available'),
        h('span', {}, h('i', { class: 'quota-mark', style: { position: 'static', display: 'inline-block' } }), 'quota'),
      ),
      region,
    );
    return {
      title: 'Clusters',
      async update() {
        const [health, tenants] = await Promise.all([api('/health'), api('/tenants').catch(() => null)]);
        const names = (health.clusters || []).map((c) => c.cluster);
        const caps = await Promise.all(names.map((n) => api(`/clusters/${encodeURIComponent(n)}/capacity`).catch((e) => ({ cluster: n, error: e }))));
        if (!names.length) return swap(region, h('p', { class: 'panel', text: 'No cluster yet: the snapshot timer has not read any cluster.' }));
        swap(
          region,
          caps.map((c) => {
            if (c.error)
              return h(
                'section',
                { class: 'panel', 'data-cluster': c.cluster },
                h('h2', { text: c.cluster }),
                h('p', { class: 'muted', text: c.error.status === 404 ? 'No snapshot yet.' : c.error.message }),
              );
            return h(
              'section',
              { class: 'panel', 'data-cluster': c.cluster, 'aria-labelledby': `cl-${c.cluster}` },
              h(
                'div',
                { class: 'panel-head' },
                h('h2', { id: `cl-${c.cluster}`, text: c.cluster }),
                h('span', { class: `badge ${c.stale ? 'bad' : 'ok'}`, 'data-stale': String(c.stale), text: c.stale ? 'stale' : 'fresh' }),
                h('span', { class: 'muted', text: `snapshot ${duration(c.ageSeconds)} old (${clock(c.takenAt)})` }),
                c.paused ? h('span', { class: 'badge bad', text: 'scale-out paused' }) : null,
              ),
              c.nodearrays.map((na) => [
                h('h3', { text: `${na.name} · max ${na.maxCount}` }),
                h(
                  'div',
                  { class: 'buckets' },
                  na.buckets.map((b) => bucketRow(na, b)),
                ),
              ]),
            );
          }),
          tenantsPanel(tenants),
        );
      },
    };
  }

  // ---- Requests ----
  function requestsView(query) {
    const filters = { state: query.get('state') || '', cluster: query.get('cluster') || '', q: query.get('q') || '', leased: query.get('leased') === 'true' ? 'true' : '' };
    let cursors = [];
    const stateSel = h(
      'select',
      { id: 'f-state', name: 'state' },
      h('option', { value: '', text: 'All states' }),
      h('option', { value: OPEN, text: 'Open (queued, planning, submitted)' }),
      STATES.map((s) => h('option', { value: s, text: s.replace('_', ' ') })),
    );
    const clusterSel = h('select', { id: 'f-cluster', name: 'cluster' }, h('option', { value: '', text: 'All clusters' }));
    const search = h('input', { id: 'f-q', name: 'q', type: 'search', placeholder: 'request id or job id', autocomplete: 'off', spellcheck: 'false' });
    const leasedBox = h('input', { id: 'f-leased', name: 'leased', type: 'checkbox' });
    leasedBox.checked = filters.leased === 'true';
    stateSel.value = filters.state;
    search.value = filters.q;
    const form = h(
      'form',
      {
        class: 'filters',
        role: 'search',
        onsubmit: (e) => {
          e.preventDefault();
          apply();
        },
      },
      h('label', { for: 'f-state' }, 'State', stateSel),
      h('label', { for: 'f-cluster' }, 'Cluster', clusterSel),
      h('label', { for: 'f-q' }, 'Search', search),
      h('label', { for: 'f-leased', title: 'Requests with a lease, the soonest to expire first' }, leasedBox, 'Leased, expiring first'),
      h('button', { type: 'submit', text: 'Apply' }),
    );
    stateSel.addEventListener('change', () => apply());
    clusterSel.addEventListener('change', () => apply());
    leasedBox.addEventListener('change', () => apply());
    const region = h('div');
    const pager = h('div', { class: 'pager' });
    view.append(h('h1', { text: 'Requests' }), form, region, pager);

    function apply() {
      filters.state = stateSel.value;
      filters.cluster = clusterSel.value;
      filters.q = search.value.trim();
      filters.leased = leasedBox.checked ? 'true' : '';
      cursors = [];
      const qs = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
      history.replaceState(null, '', `#/requests${qs ? `?${qs}` : ''}`);
      refresh();
    }

    function table(items) {
      if (!items.length) return h('p', { class: 'panel', text: filters.q ? `No request matches "${filters.q}".` : 'No request matches these filters.' });
      return h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'stack', 'aria-label': 'Requests, newest first' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Request', 'State', 'Cluster', 'Demands', 'Ready', 'Age', 'Reason'].map((t, i) => h('th', { scope: 'col', class: i === 3 || i === 4 ? 'num' : null, text: t })),
            ),
          ),
          h(
            'tbody',
            {},
            items.map((r) =>
              h(
                'tr',
                { 'data-request-id': r.requestId },
                h(
                  'td',
                  { 'data-label': 'Request' },
                  h('a', { href: `#/requests/${encodeURIComponent(r.requestId)}`, class: 'mono', 'data-focus': `req:${r.requestId}`, text: r.requestId }),
                  r.jobIds.length ? h('div', { class: 'muted', text: `job ${r.jobIds.slice(0, 3).join(', ')}${r.jobIds.length > 3 ? '…' : ''}` }) : null,
                  lifecycleNote(r) ? h('div', { class: 'muted', 'data-lifecycle': '', text: lifecycleNote(r) }) : null,
                ),
                h('td', { 'data-label': 'State' }, stateBadge(r.state)),
                h('td', { 'data-label': 'Cluster', text: r.cluster || dash }),
                h('td', { 'data-label': 'Demands', class: 'num', text: num(r.demands) }),
                h('td', {
                  'data-label': 'Ready',
                  class: 'num',
                  'data-ready': `${r.ready}/${r.requested}`,
                  text: r.kind !== 'scale' ? dash : `${num(r.ready)} / ${num(r.requested)}`,
                }),
                h('td', { 'data-label': 'Age', title: clock(r.createdAt), text: duration((Date.now() - Date.parse(r.createdAt)) / 1000) }),
                h('td', { 'data-label': 'Reason', class: r.reason ? 'reason' : 'reason empty', text: r.reason || '' }),
              ),
            ),
          ),
        ),
      );
    }

    return {
      title: 'Requests',
      async update() {
        const qs = new URLSearchParams({ limit: '50' });
        if (filters.state) qs.set('state', filters.state);
        if (filters.cluster) qs.set('cluster', filters.cluster);
        if (filters.q) qs.set('q', filters.q);
        if (filters.leased) qs.set('leased', 'true');
        if (cursors.length) qs.set('cursor', cursors.at(-1));
        const [page, health] = await Promise.all([api(`/scale-requests?${qs}`), api('/health').catch(() => null)]);
        const known = new Set([...(health?.clusters || []).map((c) => c.cluster), ...page.items.map((r) => r.cluster).filter(Boolean), filters.cluster].filter(Boolean));
        const have = new Set([...clusterSel.options].map((o) => o.value));
        for (const c of [...known].sort()) if (!have.has(c)) clusterSel.append(h('option', { value: c, text: c }));
        clusterSel.value = filters.cluster;
        swap(region, table(page.items));
        swap(
          pager,
          cursors.length
            ? h('button', {
                type: 'button',
                'data-focus': 'newest',
                onclick: () => {
                  cursors = [];
                  refresh();
                },
                text: '← Newest',
              })
            : null,
          page.nextCursor
            ? h('button', {
                type: 'button',
                'data-focus': 'older',
                onclick: () => {
                  cursors.push(page.nextCursor);
                  refresh();
                },
                text: 'Older →',
              })
            : null,
          h('span', { class: 'muted', text: `${page.items.length} shown${cursors.length ? ` · page ${cursors.length + 1}` : ''}` }),
        );
      },
      focusSearch: () => search.focus(),
    };
  }

  // ---- One request ----
  function requestView(requestId) {
    const region = h('div');
    view.append(h('p', {}, h('a', { href: '#/requests', text: '← All requests' })), region);
    const tableOf = (label, heads, rows) =>
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { 'aria-label': label },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              heads.map((t) => h('th', { scope: 'col', text: t })),
            ),
          ),
          h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: heads.length, class: 'muted', text: 'none' }))),
        ),
      );
    return {
      title: requestId,
      async update() {
        const [r, t] = await Promise.all([
          api(`/scale-requests/${encodeURIComponent(requestId)}?cost=true`),
          api(`/scale-requests/${encodeURIComponent(requestId)}/timeline`).catch(() => null),
        ]);
        const events = [
          ...(t?.transitions || []).map((x) => ({ at: x.at, what: [stateBadge(x.state), ` ${x.ready} node${x.ready === 1 ? '' : 's'} ready`] })),
          ...(t?.attempts || []).map((x) => ({
            at: x.at,
            what: [`CycleCloud create `, h('span', { class: 'mono', text: x.cycleCloudRequestId }), ` for ${x.nodes} node${x.nodes === 1 ? '' : 's'}: ${x.state}`],
          })),
          ...(t?.compensations || []).map((x) => ({
            at: x.at,
            what: `Compensated ${x.nodes} node(s) of demand ${x.demand}${x.placementGroupId ? ` in ${x.placementGroupId}` : ''}: ${x.reason}`,
          })),
        ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
        swap(
          region,
          h('h1', { class: 'mono', text: r.requestId }),
          h(
            'section',
            { class: 'panel' },
            h(
              'dl',
              { class: 'kv' },
              h('dt', { text: 'State' }),
              h('dd', { id: 'request-state' }, stateBadge(r.state)),
              h('dt', { text: 'Cluster' }),
              h('dd', { text: `${r.cluster || dash} · ${r.kind}` }),
              h('dt', { text: 'Created' }),
              h('dd', { text: `${clock(r.createdAt)} (${ago(r.createdAt)})` }),
              h('dt', { text: 'Updated' }),
              h('dd', { text: `${clock(r.updatedAt)} (${ago(r.updatedAt)})` }),
              h('dt', { text: 'Reason' }),
              h('dd', { text: r.reason || dash }),
              r.lease
                ? [h('dt', { text: 'Lease' }), h('dd', { id: 'request-lease', text: `${r.lease.seconds} s, expires ${clock(r.lease.expiresAt)} (${until(r.lease.expiresAt)})` })]
                : null,
              r.maxLifetime ? [h('dt', { text: 'Max lifetime' }), h('dd', { text: `ends ${clock(r.maxLifetime.endsAt)} (${until(r.maxLifetime.endsAt)})` })] : null,
              r.released ? [h('dt', { text: 'Released' }), h('dd', { id: 'request-released', text: `${r.released.reason} at ${clock(r.released.at)}` })] : null,
              r.cost
                ? [
                    h('dt', { text: 'Cost' }),
                    h(
                      'dd',
                      { id: 'request-cost' },
                      h('b', { 'data-amount': String(r.cost.amount), text: money(r.cost.amount, r.cost.currency, 4) }),
                      ` for ${(r.cost.nodeSeconds / 3600).toFixed(2)} node-hours, as of ${clock(r.cost.asOf)}`,
                      r.cost.unpriced.length
                        ? h('div', { class: 'muted', 'data-unpriced': '', text: `no price for ${r.cost.unpriced.join(', ')}: their node-hours are not in the amount` })
                        : null,
                    ),
                  ]
                : null,
              r.nodes?.some((n) => n.spot)
                ? [h('dt', { text: 'Spot' }), h('dd', { text: `${r.nodes.filter((n) => n.spot).length} spot, ${r.nodes.filter((n) => !n.spot).length} regular node(s)` })]
                : null,
              r.errors?.length
                ? [
                    h('dt', { text: 'Errors' }),
                    h(
                      'dd',
                      {},
                      r.errors.map((e) => h('div', { class: 'mono', text: `${e.path}: ${e.message}` })),
                    ),
                  ]
                : null,
            ),
          ),
          h(
            'div',
            { class: 'grid2' },
            h(
              'section',
              { 'aria-labelledby': 'h-timeline' },
              h('h3', { id: 'h-timeline', text: 'Timeline' }),
              h(
                'ol',
                { class: 'timeline panel', 'data-timeline': '' },
                events.map((e) => h('li', {}, h('time', { datetime: e.at, text: clock(e.at) }), e.what)),
              ),
            ),
            h(
              'section',
              { 'aria-labelledby': 'h-demands' },
              h('h3', { id: 'h-demands', text: 'Demands' }),
              tableOf(
                'Demands',
                ['#', 'Job', 'Ready', 'Created', 'Machine type', 'Placement group', 'Reason'],
                r.demands.map((d) =>
                  h(
                    'tr',
                    { 'data-demand': d.index },
                    h('td', { text: d.index }),
                    h('td', { text: d.jobId ?? dash }),
                    h('td', { text: `${d.ready} / ${d.requested}` }),
                    h('td', { text: d.created }),
                    h('td', { text: d.machineType ?? dash }),
                    h('td', { class: 'mono', text: d.placementGroupId ?? dash }),
                    h('td', { class: 'reason', text: d.reason ?? '' }),
                  ),
                ),
              ),
            ),
          ),
          h('h3', { text: 'Operations' }),
          tableOf(
            'Operations',
            ['Operation', 'CycleCloud request id', 'State'],
            r.operations.map((o) =>
              h(
                'tr',
                {},
                h('td', { class: 'mono', text: o.operationId ?? 'lost answer: followed by request id' }),
                h('td', { class: 'mono', text: o.cycleCloudRequestId }),
                h('td', { text: o.state }),
              ),
            ),
          ),
          h('h3', { text: `Nodes (${r.nodes.length})` }),
          tableOf(
            'Nodes',
            ['Name', 'Status', 'Demand', 'Started', 'Ended', 'Node id'],
            r.nodes.map((n) =>
              h(
                'tr',
                { 'data-node': n.name },
                h('td', { class: 'mono', text: n.name }),
                h('td', { text: n.status }),
                h('td', { text: n.demand ?? dash }),
                h('td', {}, n.startedAt ? h('time', { datetime: n.startedAt, 'data-started': '', text: clock(n.startedAt) }) : dash),
                h('td', {}, n.endedAt ? h('time', { datetime: n.endedAt, 'data-ended': '', text: clock(n.endedAt) }) : dash),
                h('td', { class: 'mono muted', text: n.id ?? dash }),
              ),
            ),
          ),
        );
      },
    };
  }

  // ---- Health ----
  /** The fleet-wide CycleCloud governor: paused until, creates and batches in flight per cluster, calls per minute. */
  function governorPanel(g) {
    const pausedText = g.pausedUntil ? `paused until ${clock(g.pausedUntil)}${g.pauseReason ? ` (${g.pauseReason})` : ''}` : 'not paused';
    return [
      h('h3', { text: 'CycleCloud governor' }),
      h(
        'p',
        { class: 'muted', 'data-governor': 'pause' },
        h('span', { class: `badge ${g.pausedUntil ? 'bad' : 'ok'}`, text: g.pausedUntil ? 'paused' : 'calling' }),
        ` ${pausedText} · at most ${g.maxConcurrentCreates} create(s) in flight per cluster · ${num(g.callsPerMinute)} calls/min from this instance`,
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { 'aria-label': 'CycleCloud governor per cluster' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Cluster', 'Creates in flight', 'Batches in flight', 'Creates/min (fleet)'].map((t) => h('th', { scope: 'col', text: t })),
            ),
          ),
          h(
            'tbody',
            {},
            g.clusters.map((c) =>
              h(
                'tr',
                {},
                h('td', { text: c.cluster }),
                h('td', { class: 'num', text: c.createsInFlight }),
                h('td', { class: 'num', text: c.batchesInFlight }),
                h('td', { class: 'num', text: num(c.createsPerMinute) }),
              ),
            ),
          ),
        ),
      ),
    ];
  }

  /** Tenants past their monthly budget (their new demands wait); nothing when none is, or without budgets. */
  function budgetsNote(b) {
    if (b === null) return h('p', { class: 'muted', 'data-budgets': '', text: 'Budgets: the cost meter could not be read.' });
    if (!b?.past.length) return null;
    return [
      h('h3', { text: 'Budgets' }),
      h(
        'ul',
        { class: 'panel budgets', 'data-budgets': '' },
        b.past.map((p) =>
          h('li', { 'data-tenant': p.tenant, text: `tenant ${p.tenant} past its monthly budget: ${p.spent.toFixed(2)} of ${budgetAmount(p.monthly, b.currency)}` }),
        ),
      ),
      h('p', { class: 'muted', text: 'Their new demands wait until the next month (or a larger budget); running nodes keep running.' }),
    ];
  }

  function healthView() {
    const region = h('div');
    const switchRegion = h('section', { class: 'panel switch', 'aria-labelledby': 'h-switch' });
    view.append(h('h1', { text: 'Health' }), switchRegion, region);
    let paused = null;
    let busy = false;
    async function flip() {
      if (busy || paused === null) return;
      busy = true;
      try {
        const answer = await api(`/scale-out/${paused ? 'resume' : 'pause'}`, { method: 'POST', body: '{}' });
        paused = answer.paused;
        renderSwitch();
        clearError();
        refresh();
      } catch (error) {
        showError(error);
      } finally {
        busy = false;
      }
    }
    function renderSwitch() {
      swap(
        switchRegion,
        h('h2', { id: 'h-switch', text: 'Scale-out' }),
        h('button', {
          type: 'button',
          role: 'switch',
          id: 'pause-switch',
          'data-focus': 'pause',
          'aria-checked': String(paused === true),
          disabled: paused === null,
          onclick: flip,
          text: paused ? 'Paused: resume' : 'Running: pause',
        }),
        h('span', {
          class: 'muted',
          text: paused ? 'New scale requests are accepted and wait; terminates still run.' : 'Requests are planned and sent to CycleCloud as they arrive.',
        }),
      );
    }
    const card = (label, value, attr) => h('div', { class: 'card', 'data-card': attr }, h('dt', { text: label }), h('dd', { text: value }));
    const val = (v) => (v === undefined || v === null ? dash : num(v));
    return {
      title: 'Health',
      async update() {
        const [health, counters, state] = await Promise.all([api('/health'), api('/counters').catch(() => null), api('/scale-out').catch(() => null)]);
        paused = state ? state.paused : health.paused;
        renderSwitch();
        const orphans = health.orphans || {};
        swap(
          region,
          h(
            'dl',
            { class: 'cards' },
            card('Status', health.status, 'status'),
            card('Storage', health.storage?.reachable ? 'reachable' : 'unreachable', 'storage'),
            card('Queue depth', val(health.queue?.depth), 'queue'),
            card('Poison messages', val(health.poison?.count), 'poison'),
            card('Rejected messages', val(health.rejectedMessages), 'rejected'),
            card('Orphans adopted', val(orphans.adopted), 'orphans-adopted'),
            card('Orphans terminated', val(orphans.terminated), 'orphans-terminated'),
            card('Over-ask', val(health.overAsk), 'over-ask'),
          ),
          budgetsNote(health.budgets),
          h('h3', { text: 'Snapshots' }),
          h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { 'aria-label': 'Snapshots per cluster' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Cluster', 'Snapshot age', 'Taken at', 'Stale', 'Failed reads in a row'].map((t) => h('th', { scope: 'col', text: t })),
                ),
              ),
              h(
                'tbody',
                {},
                (health.clusters || []).map((c) =>
                  h(
                    'tr',
                    {},
                    h('td', { text: c.cluster }),
                    h('td', { text: c.ageSeconds === null ? 'never read' : duration(c.ageSeconds) }),
                    h('td', { text: clock(c.takenAt) }),
                    h('td', {}, h('span', { class: `badge ${c.stale ? 'bad' : 'ok'}`, text: c.stale ? 'stale' : 'fresh' })),
                    h('td', { class: 'num', text: c.consecutiveFailures }),
                  ),
                ),
              ),
            ),
          ),
          health.governor ? governorPanel(health.governor) : null,
          counters
            ? [
                h('h3', { text: 'Counters' }),
                h(
                  'div',
                  { class: 'table-wrap' },
                  h(
                    'table',
                    { 'aria-label': 'Counters' },
                    h(
                      'tbody',
                      {},
                      Object.keys(counters.counters).length
                        ? Object.entries(counters.counters)
                            .sort()
                            .map(([k, v]) => h('tr', {}, h('th', { scope: 'row', text: k }), h('td', { class: 'num', text: num(v) })))
                        : h('tr', {}, h('td', { class: 'muted', text: 'no counter yet' })),
                    ),
                  ),
                ),
              ]
            : null,
        );
      },
    };
  }

  // ---- Metrics (the Prometheus text of GET /api/metrics) ----
  // The same figures Azure Monitor gets, read from this instance. Only what the scaler writes needs
  // reading: `# ` lines, and `name{label="value",…} number`, label values escaped as \\ \" \n.
  function parseMetrics(text) {
    const samples = [];
    const unquote = (v) => v.replace(/\\(["\\n])/g, (_m, c) => (c === 'n' ? '\n' : c));
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      for (const l of (m[2] || '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = unquote(l[2]);
      const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
      samples.push({ name: m[1], labels, value });
    }
    return samples;
  }
  const has = (labels, want) => Object.entries(want).every(([k, v]) => (typeof v === 'function' ? v(labels[k]) : labels[k] === v));
  const metricSum = (samples, name, want = {}) => samples.filter((s) => s.name === name && has(s.labels, want)).reduce((n, s) => n + s.value, 0);
  /** A histogram's quantile the way Prometheus' histogram_quantile estimates it: linear inside the bucket. */
  function metricQuantile(samples, name, q, want = {}) {
    const byLe = new Map();
    for (const s of samples) {
      if (s.name !== `${name}_bucket` || !has(s.labels, want)) continue;
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      byLe.set(le, (byLe.get(le) || 0) + s.value);
    }
    const bounds = [...byLe.keys()].sort((a, b) => a - b);
    const total = byLe.get(Infinity) || 0;
    if (!total) return null;
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (const le of bounds) {
      const count = byLe.get(le);
      if (count >= rank) {
        if (le === Infinity) return lower; // past the last bound: its lower edge, as Prometheus does
        return lower + (le - lower) * ((rank - below) / Math.max(1e-12, count - below));
      }
      lower = le;
      below = count;
    }
    return null;
  }
  const seconds = (v) => (v === null ? dash : v < 1 ? `${Math.round(v * 1000)} ms` : duration(v));

  /** The "this instance" panel of the trends view: counters and latencies from /api/metrics. */
  function metricsPanel() {
    const cards = h('dl', { class: 'cards', 'data-metrics': '' });
    const calls = h('div', {});
    const el = h(
      'section',
      { class: 'panel', 'aria-labelledby': 'metrics-title' },
      h('h2', { id: 'metrics-title', text: 'This instance since it started' }),
      h(
        'p',
        { class: 'muted' },
        'From ',
        h('code', { text: 'GET /api/metrics' }),
        ': the figures Azure Monitor receives, as this instance counted them (docs/operations.md, Metrics).',
      ),
      cards,
      calls,
    );
    async function update() {
      let samples;
      try {
        samples = parseMetrics(await api('/metrics', { as: 'text' }));
      } catch (error) {
        // A host that collects no metrics answers 404: say so, keep the rest of the view.
        if (error instanceof ApiError && error.status === 404) {
          swap(cards, h('p', { class: 'muted', text: 'This host collects no metrics.' }));
          swap(calls);
          return;
        }
        throw error;
      }
      const card = (label, value, attr, title) => h('div', { class: 'card', 'data-metric': attr, title }, h('dt', { text: label }), h('dd', { text: value }));
      const count = (name, want) => num(metricSum(samples, name, want));
      const notAccepted = (o) => o !== undefined && o !== 'accepted';
      swap(
        cards,
        card('Create calls accepted', count('scaler_create_calls_total', { outcome: 'accepted' }), 'creates-accepted'),
        card('Create calls refused', count('scaler_create_calls_total', { outcome: notAccepted }), 'creates-refused', 'answered with an error code'),
        card('Accept → create p50', seconds(metricQuantile(samples, 'scaler_create_latency', 0.5)), 'create-p50'),
        card('Accept → create p95', seconds(metricQuantile(samples, 'scaler_create_latency', 0.95)), 'create-p95'),
        card('Nodes requested', count('scaler_nodes_requested_total'), 'nodes-requested'),
        card('Nodes ready', count('scaler_nodes_ready_total'), 'nodes-ready'),
        card('Nodes failed', count('scaler_nodes_failed_total'), 'nodes-failed'),
        card('Nodes timed out', count('scaler_nodes_timed_out_total'), 'nodes-timed-out'),
        card('Boot time p50', seconds(metricQuantile(samples, 'scaler_node_boot_time', 0.5)), 'boot-p50'),
        card('Over-ask', count('scaler_over_ask_total'), 'over-ask', 'node sets CycleCloud answered with fewer nodes than asked'),
        card('Governor pauses', count('scaler_governor_pauses_total'), 'governor-pauses'),
        card('Messages rejected', count('scaler_messages_rejected_total'), 'messages-rejected'),
        card('Callbacks failed', count('scaler_callbacks_total', { outcome: 'failed' }), 'callbacks-failed'),
      );
      const operations = [...new Set(samples.filter((s) => s.name === 'cyclecloud_client_duration_count').map((s) => s.labels.operation))].sort();
      swap(
        calls,
        operations.length
          ? h(
              'div',
              { class: 'table-wrap' },
              h(
                'table',
                { class: 'stack', 'aria-label': 'CycleCloud calls by operation' },
                h(
                  'thead',
                  {},
                  h(
                    'tr',
                    {},
                    ['CycleCloud call', 'Calls', 'Errors', 'p50', 'p95'].map((t, i) => h('th', { scope: 'col', class: i ? 'num' : null, text: t })),
                  ),
                ),
                h(
                  'tbody',
                  {},
                  operations.map((op) =>
                    h(
                      'tr',
                      { 'data-operation': op },
                      h('td', { 'data-label': 'CycleCloud call', class: 'mono', text: op }),
                      h('td', { 'data-label': 'Calls', class: 'num', 'data-calls': '', text: count('cyclecloud_client_duration_count', { operation: op }) }),
                      h('td', { 'data-label': 'Errors', class: 'num', text: count('cyclecloud_client_errors_total', { operation: op }) }),
                      h('td', { 'data-label': 'p50', class: 'num', text: seconds(metricQuantile(samples, 'cyclecloud_client_duration', 0.5, { operation: op })) }),
                      h('td', { 'data-label': 'p95', class: 'num', text: seconds(metricQuantile(samples, 'cyclecloud_client_duration', 0.95, { operation: op })) }),
                    ),
                  ),
                ),
              ),
            )
          : h('p', { class: 'muted', text: 'No CycleCloud call yet.' }),
      );
    }
    return { el, update };
  }

  // ---- Trends ----
  function trendsView(query) {
    let hours = Number(query.get('hours')) || 6;
    const select = h(
      'select',
      { id: 'f-hours' },
      [1, 3, 6, 12, 24, 48].map((n) => h('option', { value: n, text: `last ${n} h` })),
    );
    select.value = String(hours);
    select.addEventListener('change', () => {
      hours = Number(select.value);
      history.replaceState(null, '', `#/trends?hours=${hours}`);
      refresh();
    });
    const totals = h('dl', { class: 'cards' });
    const defs = [
      { id: 'requests', title: 'Requests per minute', series: [{ label: 'requests/min', key: 'requests', perMinute: true, color: '--used', bars: true }] },
      {
        id: 'latency',
        title: 'Accept → fulfilled (seconds)',
        series: [
          { label: 'p50', key: 'p50Seconds', color: '--ok' },
          { label: 'p95', key: 'p95Seconds', color: '--inflight' },
        ],
      },
      { id: 'nodes', title: 'Nodes ready per minute', series: [{ label: 'nodes/min', key: 'nodesReady', perMinute: true, color: '--ok', bars: true }] },
    ];
    const figures = defs.map((d) => {
      const box = h('div', { class: 'chart', id: `chart-${d.id}` });
      const summary = h('p', { class: 'muted', 'data-summary': d.id });
      return { d, box, summary, el: h('figure', { class: 'panel', 'data-chart': d.id }, h('figcaption', { text: d.title }), box, summary), plot: null };
    });
    const live = metricsPanel();
    view.append(
      h('h1', { text: 'Trends' }),
      h('div', { class: 'filters' }, h('label', { for: 'f-hours' }, 'Window', select)),
      totals,
      h(
        'div',
        { class: 'charts' },
        figures.map((f) => f.el),
      ),
      live.el,
    );
    const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    const scheme = matchMedia('(prefers-color-scheme: dark)');
    let last = null;
    const redraw = () => {
      for (const f of figures) {
        f.plot?.destroy();
        f.plot = null;
      }
      if (last) draw(last);
    };
    scheme.addEventListener('change', redraw);
    const onResize = () => redraw();
    addEventListener('resize', onResize);

    function draw(t) {
      const xs = t.buckets.map((b) => b.atMs / 1000);
      const minutes = t.bucketSeconds / 60;
      for (const f of figures) {
        const data = [xs, ...f.d.series.map((s) => t.buckets.map((b) => (b[s.key] === null ? null : s.perMinute ? b[s.key] / minutes : b[s.key])))];
        if (f.plot) {
          f.plot.setData(data);
          continue;
        }
        const axis = { stroke: cssVar('--muted'), grid: { stroke: cssVar('--line'), width: 1 }, ticks: { stroke: cssVar('--line'), width: 1 } };
        const bars = typeof uPlot !== 'undefined' && uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined;
        f.plot = new uPlot(
          {
            width: Math.max(260, f.box.clientWidth || 600),
            height: 200,
            // Counts and seconds start at 0: a flat series must not look like a swing.
            scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
            axes: [axis, { ...axis, size: 48 }],
            legend: { live: true },
            series: [
              {},
              ...f.d.series.map((s) => ({
                label: s.label,
                stroke: cssVar(s.color),
                width: 2,
                fill: s.bars ? `${cssVar(s.color)}88` : undefined,
                paths: s.bars ? bars : undefined,
                spanGaps: false,
                points: { show: !s.bars },
              })),
            ],
          },
          data,
          f.box,
        );
        f.box.querySelector('canvas')?.setAttribute('aria-hidden', 'true');
      }
    }

    return {
      title: 'Trends',
      async update() {
        const [t] = await Promise.all([api(`/trends?hours=${hours}`), live.update()]);
        last = t;
        const card = (label, value, attr) => h('div', { class: 'card', 'data-card': attr }, h('dt', { text: label }), h('dd', { text: value }));
        swap(
          totals,
          card(`Requests (${hours} h)`, num(t.totals.requests), 'requests'),
          card('Fulfilled', num(t.totals.fulfilled), 'fulfilled'),
          card('Accept → fulfilled p50', duration(t.totals.p50Seconds ?? NaN), 'p50'),
          card('Accept → fulfilled p95', duration(t.totals.p95Seconds ?? NaN), 'p95'),
          card('Nodes ready', num(t.totals.nodesReady), 'nodes'),
        );
        draw(t);
        const buckets = `${t.buckets.length} buckets of ${duration(t.bucketSeconds)}`;
        figures[0].summary.textContent = `${t.totals.requests} requests in ${buckets}.`;
        figures[1].summary.textContent = t.totals.fulfilled
          ? `${t.totals.fulfilled} fulfilled: p50 ${duration(t.totals.p50Seconds)}, p95 ${duration(t.totals.p95Seconds)}.`
          : 'No request fulfilled in this window.';
        figures[2].summary.textContent = `${t.totals.nodesReady} nodes became ready in ${buckets}.`;
      },
      destroy() {
        scheme.removeEventListener('change', redraw);
        removeEventListener('resize', onResize);
        for (const f of figures) f.plot?.destroy();
      },
    };
  }

  const VIEWS = { clusters: clustersView, requests: requestsView, health: healthView, trends: trendsView };

  // ---- keyboard ----
  // Single-character shortcuts can be switched off (WCAG 2.1.4), e.g. for speech input; remembered per browser.
  const shortcuts = $('#shortcuts');
  shortcuts.checked = localStorage.getItem('ccscale.shortcuts') !== 'off';
  shortcuts.addEventListener('change', () => localStorage.setItem('ccscale.shortcuts', shortcuts.checked ? 'on' : 'off'));
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || !shortcuts.checked) return;
    const t = e.target;
    if (t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement || $('#key-dialog').open) return;
    const views = ['clusters', 'requests', 'health', 'trends'];
    if (/^[1-4]$/.test(e.key)) {
      location.hash = `#/${views[Number(e.key) - 1]}`;
      e.preventDefault();
    } else if (e.key === '/') {
      e.preventDefault();
      // On the list already: focus now, so keys typed next go to the search, not to the shortcuts
      if (current?.focusSearch && location.hash.startsWith('#/requests') && !location.hash.match(/^#\/requests\/./)) current.focusSearch();
      else {
        location.hash = '#/requests';
        setTimeout(() => current?.focusSearch?.(), 0);
      }
    } else if (e.key === 'r') {
      refresh();
    }
  });
  $('#refresh').addEventListener('click', () => refresh());
  $('#forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORE);
    showError(new Error('key forgotten: the next request will ask for one'));
  });
  addEventListener('hashchange', () => {
    route();
    view.focus({ preventScroll: true });
  });
  route();
})();
