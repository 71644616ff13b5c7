// Chinese first, English on the switch; the choice is kept in the browser.
const LANG_KEY = "carbon-ops-lang";

/** @type {Record<string, Record<string, string>>} */
const TEXT = {
  zh: {
    brand: "个人碳账户控制台", skip: "跳到内容", larger: "大字", logout: "退出", switch: "English",
    login_title: "登录", login_token: "令牌（启动表中打印的管理员令牌）", login_go: "登录", login_bad: "令牌无效",
    nav_counter: "柜台", nav_dashboard: "运营看板", nav_settlement: "区域结算", nav_explain: "积分解释",
    nav_partners: "合作方与密钥", nav_catalog: "商品与规则版本", nav_adjustments: "四眼调账", nav_audit: "审计日志", nav_staff: "工作人员",
    staff_add: "添加并发放令牌", token_issue: "发放令牌", token_once: "新令牌（只显示一次）", role: "角色", token: "令牌",
    find_title: "查找居民", find_query: "手机号或16位账号", find_go: "查找", find_none: "未找到账户",
    open_title: "现场开户", region: "地区", name: "姓名", id_number: "身份证号", phone: "手机号", centre: "社区中心",
    consents: "同意授权", consent_COMMUNITY_ACTIVITY: "社区活动", consent_GARBAGE_SORTING: "垃圾分类",
    consent_TRANSIT: "公共交通", open_go: "开户并绑定手机", opened: "已开户", account: "账号", state: "状态",
    choose: "选择", balance: "可用积分", expiring: "30天内到期", expiring_days: "90天内按日到期", points: "分",
    record_title: "记录柜台行为", behaviour: "行为", quantity: "次数/天数", record_go: "记录",
    b_tree_planting: "植树", b_sorting_supervisor_day: "垃圾分类督导（天）", recorded: "已记录，获得积分",
    b_recycling_kg: "废旧物品回收（公斤）", quantity_kg: "重量（公斤）", evidence: "签到表/称重单号（可空）",
    redeem_title: "兑换", reward: "商品", redeem_go: "兑换", print_voucher: "打印兑换券", redeemed: "已兑换",
    vouchers_title: "兑换券", code: "券码", use_go: "核销", used: "已核销", print: "打印",
    summary_title: "月度积分汇总", month: "月份", summary_go: "打印月度汇总", when: "时间", amount: "积分",
    kind: "类型", voucher: "兑换券", expires: "有效期至", resident: "居民",
    from_day: "开始日期", to_day: "结束日期", show: "查看", national: "全国合计", issued: "已发放", outstanding: "余额",
    redeemed_pts: "已兑换", expired: "已过期", donated: "已捐赠", co2e: "减排（克CO2e）", events: "事件数",
    by_day: "按日积分与减排", by_behaviour: "按行为", by_region: "按地区", no_data: "该期间没有数据",
    nav_national: "全国数据", period_closed: "该月已结账，数据不再变化", period_open: "该月尚未结账，数据截至现在",
    accounts_open: "账户数（月末）", accounts_opened: "本月开户", transferred_in: "跨区转入", trees: "植树（棵）",
    books: "捐书（本）", expiring_ahead: "未来各月将到期的积分（按地区）", forest_mu: "造林面积（亩）", by_day_kinds: "按日发放、兑换、过期与捐赠积分",
    settlement_gross: "区域间毛额", settlement_net: "轧差后", debtor: "付款方", creditor: "收款方",
    partner: "合作方", event_id: "事件编号", explain_go: "解释", rule_version: "规则版本",
    rotate: "轮换密钥", secret_once: "新密钥（只显示一次）", change_title: "修改合作方可申报的行为", change_go: "保存修改",
    active_key: "当前密钥", partner_active: "可申报", partner_inactive: "已停用", rewards: "商品", rules: "规则版本",
    adjust_request: "申请调账", reason: "原因", approve: "批准", reject: "驳回", request_go: "提交申请",
    who: "操作人", action: "动作", target: "对象", outcome: "结果", status: "状态", id: "编号",
    forbidden_page: "您的角色不能使用此页面", field: "项目", value: "内容", loading: "加载中…", done: "完成",
    guardian: "监护人账号", guardian_hint: "未满14岁：须由在场的监护人（已开户的成年人）代为开户并同意授权",
    minor: "未满14岁", reason_GUARDIAN_REQUIRED: "未满14岁的居民须由监护人在场开户，请填写监护人账号",
    reason_GUARDIAN_NOT_ELIGIBLE: "监护人须为本地区已开户的成年人（年满18岁）",
    reason_GUARDIAN_NOT_ACTING: "须由监护人本人办理",
    nav_campaigns: "激励活动", budget: "预算（分）", spend: "已发放奖励（分）", remaining: "剩余预算（分）", bonuses: "奖励笔数",
    campaign_spend: "各活动的预算使用", scope: "范围", scope_national: "全国", scope_regional: "地区",
    scope_national_all: "全国（每个地区各一份预算）", bonus: "奖励", bonus_points: "奖励积分", whom: "对象", window: "时间窗",
    target_days: "多少天未做（流失）", target_weekdays: "工作日次数（通勤）", budget_per_region: "预算（全国活动：每地区）",
    target_EVERYONE: "所有人", target_LAPSED: "一段时间未做", target_NEVER_TRIED: "从未做过", target_WEEKDAY_REGULAR: "工作日常客",
    funded: "已注资", unfunded: "未注资", exhausted: "预算用尽", campaign_create: "新建激励活动", campaign_go: "创建并注资",
    created: "已创建", offers_title: "激励活动邀请", offer: "邀请", why: "原因", accept_go: "代为接受", accepted: "已接受",
    offer_OFFER_STATE_OFFERED: "可接受", offer_OFFER_STATE_ACCEPTED: "已接受，待完成", offer_OFFER_STATE_FULFILLED: "已完成，奖励已发",
    offer_OFFER_STATE_BUDGET_EXHAUSTED: "已完成，但预算已用尽", no_offers: "暂无邀请",
    nav_conflicts: "重复申报", conflicts_intro: "同一活动被多个合作方申报时，后到的申报不计分。某一对合作方反复出现，可能是欺诈信号。",
    conflicts_by_day: "按日重复申报（按合作方对）", conflicts_by_pair: "按合作方对", conflicts_detail: "明细",
    pair: "先申报方 → 后申报方", conflicts: "重复申报数", days: "天数", day: "日期", holder: "先申报方", claimant: "后申报方",
  },
  en: {
    brand: "Carbon account console", skip: "Skip to content", larger: "Larger text", logout: "Log out", switch: "中文",
    login_title: "Log in", login_token: "Token (the admin token printed in the start-up table)", login_go: "Log in",
    login_bad: "Token not accepted",
    nav_counter: "Counter", nav_dashboard: "Dashboard", nav_settlement: "Settlement", nav_explain: "Score explanation",
    nav_partners: "Partners and keys", nav_catalog: "Catalog and rules", nav_adjustments: "Adjustments",
    nav_audit: "Audit log", nav_staff: "Staff",
    staff_add: "Add and issue a token", token_issue: "Issue token", token_once: "New token (shown once) for",
    role: "Role", token: "Token",
    find_title: "Find a resident", find_query: "Phone or 16-digit account number", find_go: "Find",
    find_none: "No account found",
    open_title: "Open an account on site", region: "Region", name: "Name", id_number: "ID number", phone: "Phone",
    centre: "Community centre", consents: "Consents", consent_COMMUNITY_ACTIVITY: "Community activities",
    consent_GARBAGE_SORTING: "Garbage sorting", consent_TRANSIT: "Public transit", open_go: "Open and bind phone",
    opened: "Account opened", account: "Account", state: "State", choose: "Choose", balance: "Available points",
    expiring: "Expiring within 30 days", expiring_days: "Expiring by day, next 90 days", points: "points",
    record_title: "Record a counter behaviour", behaviour: "Behaviour", quantity: "Times / days", record_go: "Record",
    b_tree_planting: "Tree planting", b_sorting_supervisor_day: "Sorting supervisor (day)",
    recorded: "Recorded, points earned", b_recycling_kg: "Recycling (kg)", quantity_kg: "Weight (kg)",
    evidence: "Sign-in sheet / weighing ticket (optional)",
    redeem_title: "Redeem", reward: "Reward", redeem_go: "Redeem", print_voucher: "Print voucher", redeemed: "Redeemed",
    vouchers_title: "Vouchers", code: "Code", use_go: "Use", used: "Used", print: "Print",
    summary_title: "Monthly summary", month: "Month", summary_go: "Print monthly summary", when: "When",
    amount: "Points", kind: "Kind", voucher: "Voucher", expires: "Valid until", resident: "Resident",
    from_day: "From", to_day: "To", show: "Show", national: "National totals", issued: "Issued",
    outstanding: "Outstanding", redeemed_pts: "Redeemed", expired: "Expired", donated: "Donated",
    co2e: "CO2e avoided (g)", events: "Events", by_day: "Points and CO2e by day", by_behaviour: "By behaviour",
    by_region: "By region", no_data: "No data in this period",
    nav_national: "National figures", period_closed: "This month is closed: its figures no longer change",
    period_open: "This month is open: figures so far", accounts_open: "Accounts (month end)",
    accounts_opened: "Opened this month", transferred_in: "Moved in from other regions", trees: "Trees planted",
    books: "Books given", expiring_ahead: "Points expiring in the coming months, by region", forest_mu: "Forest (mu)", by_day_kinds: "Points issued, redeemed, expired and donated by day",
    settlement_gross: "Gross between regions", settlement_net: "Netted", debtor: "Pays", creditor: "Receives",
    partner: "Partner", event_id: "Event id", explain_go: "Explain", rule_version: "Rule version",
    rotate: "Rotate secret", secret_once: "New secret (shown once)", change_title: "Change what a partner may report",
    change_go: "Save the change", active_key: "Active key", partner_active: "Active", partner_inactive: "Inactive", rewards: "Rewards", rules: "Rule versions",
    adjust_request: "Request an adjustment", reason: "Reason", approve: "Approve", reject: "Reject",
    request_go: "Submit request", who: "Who", action: "Action", target: "Target", outcome: "Outcome",
    status: "Status", id: "Id", forbidden_page: "Your role cannot use this page", field: "Field", value: "Value", loading: "Loading…", done: "Done",
    guardian: "Guardian's account", guardian_hint: "Under 14: the guardian present (an adult with an account) opens the account and gives the consents",
    minor: "Under 14", reason_GUARDIAN_REQUIRED: "A resident under 14 opens an account only with a guardian present: enter the guardian's account number",
    reason_GUARDIAN_NOT_ELIGIBLE: "The guardian must be an adult (18 or over) with an open account in this region",
    reason_GUARDIAN_NOT_ACTING: "Only the guardian may do this",
    nav_campaigns: "Campaigns", budget: "Budget (points)", spend: "Bonuses paid (points)", remaining: "Budget left (points)",
    bonuses: "Bonuses paid", campaign_spend: "Budget use by campaign", scope: "Scope", scope_national: "National",
    scope_regional: "Regional", scope_national_all: "National (a budget in every region)", bonus: "Bonus",
    bonus_points: "Bonus points", whom: "Whom", window: "Window", target_days: "Days without it (lapsed)",
    target_weekdays: "Weekdays done (regulars)", budget_per_region: "Budget (national: per region)",
    target_EVERYONE: "Everyone", target_LAPSED: "Lapsed", target_NEVER_TRIED: "Never tried", target_WEEKDAY_REGULAR: "Weekday regulars",
    funded: "Funded", unfunded: "Not funded", exhausted: "Budget spent", campaign_create: "Create a campaign",
    campaign_go: "Create and fund", created: "Created", offers_title: "Campaign offers", offer: "Offer", why: "Why",
    accept_go: "Accept for the resident", accepted: "Accepted",
    offer_OFFER_STATE_OFFERED: "Offered", offer_OFFER_STATE_ACCEPTED: "Accepted, waiting", offer_OFFER_STATE_FULFILLED: "Done, bonus paid",
    offer_OFFER_STATE_BUDGET_EXHAUSTED: "Done, but the budget was spent", no_offers: "No offers now",
    nav_conflicts: "Claim conflicts", conflicts_intro: "When partners report an activity another partner already reported, the later report earns nothing. A pair of partners that keeps appearing may be a fraud signal.",
    conflicts_by_day: "Conflicts by day (per partner pair)", conflicts_by_pair: "By partner pair", conflicts_detail: "Detail",
    pair: "First reporter → later reporter", conflicts: "Conflicts", days: "Days", day: "Day", holder: "First reporter",
    claimant: "Later reporter",
  },
};

export let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";

/** Whether the key has a text (in either language). @param {string} key */
export function hasText(key) {
  return key in TEXT.zh || key in TEXT.en;
}

/** @param {string} key */
export function t(key) {
  return TEXT[lang][key] ?? TEXT.zh[key] ?? key;
}

export function toggleLang() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

/** Fills every [data-i18n] element under root with its text in the current language. */
export function translate(root = document.body) {
  root.querySelectorAll("[data-i18n]").forEach((node) => {
    node.textContent = t(node.getAttribute("data-i18n") || "");
  });
}
