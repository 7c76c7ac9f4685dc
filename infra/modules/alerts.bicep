// Alert rules, their action group and the operator workbook, on the OpenTelemetry metrics the
// scaler exports to Application Insights (customMetrics; names in docs/operations.md "Metrics").
// Each rule is a scheduled query over the Application Insights component, so it reads the same
// figures `/api/metrics` serves; each names its runbook section in docs/operations.md.
param applicationInsightsId string
param location string
param tags object = {}
param nameSuffix string

@description('E-mail address the action group notifies; empty = no e-mail receiver.')
param alertEmail string = ''

@description('HTTPS webhook the action group calls with the common alert schema; empty = no webhook.')
param alertWebhookUrl string = ''

@description('Seconds between snapshots (SNAPSHOT_SCHEDULE); the snapshot alert fires past 3 periods.')
param snapshotPeriodSeconds int = 60

@description('Where the runbook lives (the repository\'s docs/operations.md, or your copy of it); each alert links to its section.')
param runbookUrl string = 'docs/operations.md'

var runbook = runbookUrl

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-scaler-${nameSuffix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'ccscaler'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      { name: 'operators', emailAddress: alertEmail, useCommonAlertSchema: true }
    ]
    webhookReceivers: empty(alertWebhookUrl) ? [] : [
      { name: 'webhook', serviceUri: alertWebhookUrl, useCommonAlertSchema: true }
    ]
  }
}

// key: the runbook anchor; query: rows mean trouble (the rule fires when it returns any).
var rules = [
  {
    key: 'requests-past-their-deadline'
    title: 'Requests open past their deadline'
    severity: 2
    window: 'PT15M'
    query: 'customMetrics | where name == "scaler.requests.overdue" | summarize overdue = max(valueMax) by cluster = tostring(customDimensions.cluster) | where overdue > 0'
  }
  {
    key: 'cyclecloud-unreachable'
    title: 'CycleCloud unreachable or answering 5xx for 5 minutes'
    severity: 1
    window: 'PT5M'
    query: 'customMetrics | where name == "cyclecloud.client.duration" | extend outcome = tostring(customDimensions.outcome) | summarize ok = sumif(valueCount, outcome startswith "2" or outcome startswith "4"), bad = sumif(valueCount, outcome startswith "5" or outcome == "0") | where bad > 0 and ok == 0'
  }
  {
    key: 'snapshot-stale'
    title: 'Cluster snapshot older than 3 periods'
    severity: 2
    window: 'PT15M'
    query: 'customMetrics | where name == "scaler.snapshot.age" | summarize age = max(valueMax) by cluster = tostring(customDimensions.cluster) | where age > ${3 * snapshotPeriodSeconds}'
  }
  {
    key: 'poison-queue-not-empty'
    title: 'Messages reached the poison queue'
    severity: 2
    window: 'PT15M'
    query: 'customMetrics | where name == "scaler.messages.poisoned" | summarize poisoned = sum(valueSum) | where poisoned > 0'
  }
  {
    key: 'over-ask'
    title: 'CycleCloud filled create sets only in part (over-ask above 0)'
    severity: 3
    window: 'PT15M'
    query: 'customMetrics | where name == "scaler.over_ask" | summarize sets = sum(valueSum) by cluster = tostring(customDimensions.cluster) | where sets > 0'
  }
  {
    key: 'callbacks-failing'
    title: 'Callbacks failing or refused'
    severity: 3
    window: 'PT15M'
    query: 'customMetrics | where name == "scaler.callbacks" | extend outcome = tostring(customDimensions.outcome) | summarize failed = sumif(valueSum, outcome in ("failed", "refused")) | where failed > 0'
  }
]

resource alert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for rule in rules: {
  name: 'alert-${rule.key}-${nameSuffix}'
  location: location
  tags: tags
  properties: {
    displayName: 'CycleCloud scaler: ${rule.title}'
    description: '${rule.title}. Runbook: ${runbook}#${rule.key}'
    severity: rule.severity
    enabled: true
    scopes: [applicationInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: rule.window
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: {
      actionGroups: [actionGroup.id]
      customProperties: { runbook: '${runbook}#${rule.key}' }
    }
  }
}]

// The charts an operator looks at first.
var charts = [
  { title: 'Capacity per bucket (available nodes)', query: 'customMetrics | where name == "scaler.bucket.available" | extend bucket = strcat(tostring(customDimensions.cluster), "/", tostring(customDimensions.nodearray), "/", tostring(customDimensions.machine_type)) | summarize available = max(valueMax) by bucket, bin(timestamp, 5m) | render timechart' }
  { title: 'Open requests by state', query: 'customMetrics | where name == "scaler.requests.open" | summarize requests = max(valueMax) by state = tostring(customDimensions.state), bin(timestamp, 5m) | render timechart' }
  { title: 'Accept → create latency (s)', query: 'customMetrics | where name == "scaler.create.latency" | summarize mean = sum(valueSum) / sum(valueCount), worst = max(valueMax) by bin(timestamp, 5m) | render timechart' }
  { title: 'Boot time (s)', query: 'customMetrics | where name == "scaler.node.boot_time" | summarize mean = sum(valueSum) / sum(valueCount), worst = max(valueMax) by machine_type = tostring(customDimensions.machine_type), bin(timestamp, 15m) | render timechart' }
  { title: 'Errors: CycleCloud calls, failed nodes, rejected messages', query: 'customMetrics | where name in ("cyclecloud.client.errors", "scaler.nodes.failed", "scaler.nodes.timed_out", "scaler.messages.rejected", "scaler.messages.poisoned") | summarize count = sum(valueSum) by name, bin(timestamp, 5m) | render timechart' }
]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'cyclecloud-scaler-workbook', nameSuffix)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'CycleCloud scaler'
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: string({
      version: 'Notebook/1.0'
      items: [for (chart, i) in charts: {
        type: 3
        name: 'chart-${i}'
        content: {
          version: 'KqlItem/1.0'
          title: chart.title
          query: chart.query
          queryType: 0
          resourceType: 'microsoft.insights/components'
          visualization: 'timechart'
          timeContext: { durationMs: 86400000 }
        }
      }]
    })
  }
}

output actionGroupId string = actionGroup.id
output workbookId string = workbook.id
